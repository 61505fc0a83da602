/* dtmf.c - DTMF detector (Goertzel) and generator.
 * Frequencies ITU-T Q.23; acceptance rules ITU-T Q.24 (twist, level, duration). */
#include "dtmf.h"
#include "g711.h"
#include <math.h>
#include <string.h>

#define PI_F 3.14159265358979f
static const float ROWS[4] = {697.0f, 770.0f, 852.0f, 941.0f};
static const float COLS[4] = {1209.0f, 1336.0f, 1477.0f, 1633.0f};
static const char KEYS[4][4] = {
    {'1', '2', '3', 'A'}, {'4', '5', '6', 'B'}, {'7', '8', '9', 'C'}, {'*', '0', '#', 'D'}};

static float goertzel_energy(const float *x, int n, float hz)
{
    float coeff = 2.0f * cosf(2.0f * PI_F * hz / 8000.0f);
    float s1 = 0.0f, s2 = 0.0f;
    for (int i = 0; i < n; i++) {
        float s0 = x[i] + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    /* |X|^2 * 2/N: the same unit as sum(x^2) for a sine (A^2 N / 2). */
    return (s1 * s1 + s2 * s2 - coeff * s1 * s2) * 2.0f / (float)n;
}

static int strongest(const float *e, float *best)
{
    int k = 0;
    for (int i = 1; i < 4; i++)
        if (e[i] > e[k])
            k = i;
    *best = e[k];
    return k;
}

static bool others_below(const float *e, int k, float limit)
{
    for (int i = 0; i < 4; i++)
        if (i != k && e[i] > limit)
            return false;
    return true;
}

char dtmf_classify(const float *x, float *power)
{
    if (power)
        *power = 0.0f;
    float er[4], ec[4], total = 0.0f;
    for (int i = 0; i < DTMF_BLOCK; i++)
        total += x[i] * x[i];
    for (int i = 0; i < 4; i++) {
        er[i] = goertzel_energy(x, DTMF_BLOCK, ROWS[i]);
        ec[i] = goertzel_energy(x, DTMF_BLOCK, COLS[i]);
    }
    float r, c;
    int ri = strongest(er, &r), ci = strongest(ec, &c);
    float amp = DBM0_AMPLITUDE * powf(10.0f, DTMF_MIN_DBM0 / 20.0f);
    float min_e = amp * amp * DTMF_BLOCK / 2.0f;
    if (r < min_e || c < min_e)
        return 0;
    /* Twist = high-group level minus low-group level (Q.24 limits). */
    float twist = c / r;
    if (twist > powf(10.0f, DTMF_TWIST_MAX_DB / 10.0f) || twist < powf(10.0f, DTMF_TWIST_MIN_DB / 10.0f))
        return 0;
    /* Each tone must stand 6 dB above the other tones of its group ... */
    if (!others_below(er, ri, r * 0.25f) || !others_below(ec, ci, c * 0.25f))
        return 0;
    /* ... and the pair must carry most of the energy (rejects speech/noise). */
    if (r + c < 0.5f * total)
        return 0;
    if (power)
        *power = (r + c) / DTMF_BLOCK;
    return KEYS[ri][ci];
}

void dtmf_det_init(dtmf_det_t *d)
{
    memset(d, 0, sizeof *d);
}

/* 0.3, not 0.5: the two tones beat (941+1209 Hz: a 3.7 ms beat), and a
 * 17-sample sub-block at the beat's trough holds down to 0.45 of the mean. */
static int loud_subs(const float *sub, float level)
{
    int n = 0;
    for (int i = 0; i < DTMF_NSUB; i++)
        if (sub[i] >= 0.3f * level * DTMF_SUB)
            n++;
    return n;
}

/* sub[2] is the block just classified, sub[1] and sub[0] the two before. */
static int dtmf_block_done(dtmf_det_t *d, char k, float power, dtmf_hit_t *hits, int max)
{
    int out = 0;
    if (d->digit) {
        if (k == d->digit) {
            d->digit_blocks++;
            d->loud += loud_subs(d->sub[2], d->level);
            d->gap_blocks = 0;
            return 0;
        }
        if (++d->gap_blocks == 1)
            d->loud += loud_subs(d->sub[2], d->level);   /* the partial tail */
        if (d->gap_blocks < 2)
            return 0;
        uint32_t ms = (uint32_t)d->loud * DTMF_SUB / 8;
        if (ms >= DTMF_MIN_MS && max > 0) {
            hits[0].digit = d->digit;
            hits[0].duration_ms = (uint16_t)ms;
            out = 1;
        }
        d->digit = 0;
        d->cand = 0;
        d->cand_blocks = 0;
        return out;
    }
    if (k && k == d->cand) {
        d->cand_power[1] = power;
        if (++d->cand_blocks >= 2) {
            d->digit = k;
            d->digit_blocks = d->cand_blocks;
            d->gap_blocks = 0;
            d->level = d->cand_power[0] > power ? d->cand_power[0] : power;
            /* The block before the first hit may hold the partial head. */
            d->loud = loud_subs(d->sub[0], d->level) + loud_subs(d->sub[1], d->level) +
                      loud_subs(d->sub[2], d->level);
        }
    } else {
        d->cand = k;
        d->cand_blocks = k ? 1 : 0;
        d->cand_power[0] = power;
    }
    return 0;
}

int dtmf_det_process(dtmf_det_t *d, const int16_t *x, int n, dtmf_hit_t *hits, int max)
{
    int count = 0;
    for (int i = 0; i < n; i++) {
        d->block[d->n++] = (float)x[i];
        if (d->n == DTMF_BLOCK) {
            float power;
            d->n = 0;
            memmove(d->sub[0], d->sub[1], sizeof d->sub[0] * 2);
            for (int s = 0; s < DTMF_NSUB; s++) {
                float e = 0.0f;
                for (int j = 0; j < DTMF_SUB; j++)
                    e += d->block[s * DTMF_SUB + j] * d->block[s * DTMF_SUB + j];
                d->sub[2][s] = e;
            }
            char k = dtmf_classify(d->block, &power);
            count += dtmf_block_done(d, k, power, hits + count, max - count);
        }
    }
    return count;
}

bool dtmf_freqs(char digit, float *low_hz, float *high_hz)
{
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 4; c++)
            if (KEYS[r][c] == digit) {
                *low_hz = ROWS[r];
                *high_hz = COLS[c];
                return true;
            }
    return false;
}

void dtmf_gen_start(dtmf_gen_t *g, const char *digits, int len, int on_ms, int off_ms, float dbm0)
{
    memset(g, 0, sizeof *g);
    g->on_samples = (uint32_t)on_ms * 8;
    g->off_samples = (uint32_t)off_ms * 8;
    g->amplitude = DBM0_AMPLITUDE * powf(10.0f, dbm0 / 20.0f);
    dtmf_gen_append(g, digits, len);
}

bool dtmf_gen_append(dtmf_gen_t *g, const char *digits, int len)
{
    float lo, hi;
    if (g->index == g->count) {          /* finished: reuse the buffer */
        g->index = g->count = 0;
        g->sample = 0;
    }
    for (int i = 0; i < len; i++) {
        if (!dtmf_freqs(digits[i], &lo, &hi))
            continue;
        if (g->count >= (int)sizeof g->digits)
            return false;
        g->digits[g->count++] = digits[i];
    }
    return true;
}

bool dtmf_gen_busy(const dtmf_gen_t *g)
{
    return g->index < g->count;
}

void dtmf_gen_fill(dtmf_gen_t *g, int16_t *out, int n)
{
    for (int i = 0; i < n; i++) {
        float v = 0.0f, lo, hi;
        if (g->index < g->count) {
            if (g->sample < g->on_samples && dtmf_freqs(g->digits[g->index], &lo, &hi)) {
                float t = (float)g->sample / 8000.0f;
                v = g->amplitude * (sinf(2.0f * PI_F * lo * t) + sinf(2.0f * PI_F * hi * t));
            }
            if (++g->sample >= g->on_samples + g->off_samples) {
                g->sample = 0;
                g->index++;
            }
        }
        if (v > 32767.0f)
            v = 32767.0f;
        if (v < -32768.0f)
            v = -32768.0f;
        out[i] = (int16_t)lrintf(v);
    }
}
