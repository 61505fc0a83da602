/* signals.c - test signal helpers. */
#include "signals.h"
#include "g711.h"
#include <math.h>

static int16_t sat(float v)
{
    return (int16_t)(v > 32767.0f ? 32767 : v < -32768.0f ? -32768 : lrintf(v));
}

void sig_add_tone(int16_t *x, int n, float hz, float dbm0, float phase)
{
    float a = DBM0_AMPLITUDE * powf(10.0f, dbm0 / 20.0f);
    for (int i = 0; i < n; i++)
        x[i] = sat((float)x[i] + a * sinf(2.0f * 3.14159265f * hz * (float)i / 8000.0f + phase));
}

void sig_add_noise(int16_t *x, int n, float dbm0, uint32_t *seed)
{
    /* Sum of 4 uniforms ~ Gaussian; the variance of each uniform in [-1,1] is 1/3. */
    float rms = DBM0_AMPLITUDE / sqrtf(2.0f) * powf(10.0f, dbm0 / 20.0f);
    for (int i = 0; i < n; i++) {
        float s = 0.0f;
        for (int k = 0; k < 4; k++) {
            *seed = *seed * 1664525u + 1013904223u;
            s += (float)(*seed >> 8) / 8388608.0f - 1.0f;
        }
        x[i] = sat((float)x[i] + s * rms / sqrtf(4.0f / 3.0f));
    }
}

void sig_add_cadence(int16_t *x, int n, float f1, float f2, float dbm0, const int *ms, int nms)
{
    float a = DBM0_AMPLITUDE * powf(10.0f, dbm0 / 20.0f);
    int period = 0;
    for (int k = 0; k < nms; k++)
        period += ms[k] * 8;
    for (int i = 0; i < n; i++) {
        int t = i % period, k = 0;
        while (t >= ms[k] * 8) {
            t -= ms[k] * 8;
            k++;
        }
        if (k % 2 == 0) {
            float ph = 2.0f * 3.14159265f * (float)(i % 8000) / 8000.0f;   /* whole Hz: exact per second */
            float v = a * sinf(f1 * ph) + (f2 > 0.0f ? a * sinf(f2 * ph) : 0.0f);
            x[i] = sat((float)x[i] + v);
        }
    }
}

void sig_ulaw(int16_t *x, int n)
{
    for (int i = 0; i < n; i++)
        x[i] = ulaw_decode(ulaw_encode(x[i]));
}
