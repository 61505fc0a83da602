/* tonegen.c - call-progress tones, 440 Hz as in ETSI TR 101 041-2 for France:
 * dial continuous, ringback 1.5 s on / 3.5 s off, busy 0.5/0.5, congestion 0.25/0.25. */
#include "tonegen.h"
#include "g711.h"
#include <math.h>

#define PI_F 3.14159265358979f

static const struct { uint16_t on_ms, off_ms; } CADENCE[TONE_COUNT] = {
    {0, 0}, {1000, 0}, {1500, 3500}, {500, 500}, {250, 250}};

void tonegen_set(tonegen_t *t, uint8_t id)
{
    t->id = id < TONE_COUNT ? id : TONE_OFF;
    t->sample = 0;
}

void tonegen_fill(tonegen_t *t, int16_t *out, int n)
{
    const float amp = DBM0_AMPLITUDE * 0.2239f;   /* -13 dBm0 */
    uint32_t on = CADENCE[t->id].on_ms * 8u, period = on + CADENCE[t->id].off_ms * 8u;
    for (int i = 0; i < n; i++) {
        float v = 0.0f;
        if (t->id != TONE_OFF) {
            uint32_t in_period = t->sample % period;
            if (in_period < on)
                v = amp * sinf(2.0f * PI_F * 440.0f * (float)t->sample / 8000.0f);
            t->sample++;
            if (t->sample >= 8000u * period)   /* whole periods keep the sine continuous */
                t->sample = 0;
        }
        out[i] = (int16_t)lrintf(v);
    }
}

void sine_fill(float hz, float dbm0, float *phase, int16_t *out, int n)
{
    float amp = DBM0_AMPLITUDE * powf(10.0f, dbm0 / 20.0f);
    float step = 2.0f * PI_F * hz / 8000.0f;
    for (int i = 0; i < n; i++) {
        out[i] = (int16_t)lrintf(amp * sinf(*phase));
        *phase += step;
        if (*phase > 2.0f * PI_F)
            *phase -= 2.0f * PI_F;
    }
}
