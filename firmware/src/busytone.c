/* busytone.c - busy/congestion tone detector (ITU-T E.180 cadences; see
 * busytone.h).  The Goertzel filters run sample by sample, so no block
 * buffer is kept: 6 filters x 2 floats per FXO port. */
#include "busytone.h"
#include "g711.h"
#include <math.h>
#include <string.h>

/* 2 cos(2 pi f / 8000) for 400 420 440 460 480 620 Hz.  20 Hz apart over
 * 400-480 Hz: with a 50 Hz wide bin a tone between two filters keeps at
 * least 0.87 of its energy in the nearer one.  Index 4 (480) and 5 (620)
 * are also the North American busy pair. */
static const float COEFF[BUSY_NFREQ] = {1.9021130f, 1.8921707f, 1.8817615f,
                                        1.8708881f, 1.8595530f, 1.7675313f};
#define F480 4
#define F620 5

#define SEG_MIN (BUSY_SEG_MIN_MS / BUSY_BLOCK_MS)
#define SEG_MAX (BUSY_SEG_MAX_MS / BUSY_BLOCK_MS)
#define SEG_TOL (BUSY_SEG_TOL_MS / BUSY_BLOCK_MS)
#define DEBOUNCE_BLOCKS 2           /* one odd block (a tone edge, a click) is ignored */

static void feed(float *s1, float *s2, float *energy, const int16_t *x, int n)
{
    for (int i = 0; i < n; i++) {
        float v = (float)x[i];
        *energy += v * v;
        for (int k = 0; k < BUSY_NFREQ; k++) {
            float s0 = v + COEFF[k] * s1[k] - s2[k];
            s2[k] = s1[k];
            s1[k] = s0;
        }
    }
}

/* |X|^2 * 2/N per filter is in the unit of sum(x^2) (A^2 N / 2 for a sine),
 * so a tone's share of the block is a plain ratio. */
static bool tone_in(const float *s1, const float *s2, float energy, int n, float *dbm0)
{
    float e[BUSY_NFREQ], single = 0.0f;
    for (int k = 0; k < BUSY_NFREQ; k++) {
        e[k] = (s1[k] * s1[k] + s2[k] * s2[k] - COEFF[k] * s1[k] * s2[k]) * 2.0f / (float)n;
        if (k < F620 && e[k] > single)
            single = e[k];
    }
    float sine0 = DBM0_AMPLITUDE * DBM0_AMPLITUDE / 2.0f;   /* power of a 0 dBm0 sine */
    if (dbm0)
        *dbm0 = energy > 0.0f ? 10.0f * log10f(energy / (float)n / sine0) : -99.0f;
    /* 480+620 Hz: both present within about 5 dB of each other. */
    float tone = single;
    if (e[F480] >= 0.2f * energy && e[F620] >= 0.2f * energy && e[F480] + e[F620] > tone)
        tone = e[F480] + e[F620];
    float min_power = sine0 * powf(10.0f, BUSY_MIN_DBM0 / 10.0f);
    return tone >= min_power * (float)n && tone >= BUSY_TONE_SHARE * energy;
}

void busytone_init(busytone_t *d)
{
    memset(d, 0, sizeof *d);
}

bool busytone_classify(const int16_t *x, int n, float *dbm0)
{
    float s1[BUSY_NFREQ] = {0}, s2[BUSY_NFREQ] = {0}, energy = 0.0f;
    if (n <= 0) {
        if (dbm0)
            *dbm0 = -99.0f;
        return false;
    }
    feed(s1, s2, &energy, x, n);
    return tone_in(s1, s2, energy, n, dbm0);
}

static bool near(uint32_t a, uint32_t b)
{
    return (a > b ? a - b : b - a) <= SEG_TOL;
}

static void new_run(busytone_t *d, uint32_t start, uint32_t on)
{
    d->run_segments = 1;
    d->run_start = start;
    d->first_on = on;
    d->first_off = 0;
}

/* A burst (was_tone) or gap of len blocks ended at block end. */
static bool segment_end(busytone_t *d, bool was_tone, uint32_t start, uint32_t len, uint32_t end)
{
    bool ok = len >= SEG_MIN && len <= SEG_MAX;
    if (was_tone) {
        if (!ok)
            d->run_segments = 0;
        else if (d->run_segments > 0 && near(len, d->first_on))
            d->run_segments++;
        else
            new_run(d, start, len);          /* a new cadence may start here */
    } else {
        if (d->run_segments == 0)
            return false;                    /* silence before any burst */
        /* E.180 busy/congestion: tone and silence of about equal length
         * (ratio 0.67-1.5; one block of slack either way). */
        if (!ok || (d->first_off == 0 && (3 * d->first_on > 5 * (len + 1) || 3 * len > 5 * (d->first_on + 1))) ||
            (d->first_off != 0 && !near(len, d->first_off))) {
            d->run_segments = 0;
            return false;
        }
        if (d->first_off == 0)
            d->first_off = len;
        d->run_segments++;
    }
    if (d->busy || d->run_segments < 3)
        return false;
    if ((end - d->run_start) * BUSY_BLOCK_MS + BUSY_BLOCK_MS < BUSY_DETECT_MS)
        return false;
    d->busy = true;
    return true;
}

/* One classified block: debounce, then time the segment that ended. */
static bool block_done(busytone_t *d, bool tone)
{
    uint32_t k = d->block++;
    if (tone == d->tone) {
        d->pending = 0;
        return false;
    }
    if (++d->pending < DEBOUNCE_BLOCKS)
        return false;
    uint32_t change = k + 1 - (uint32_t)d->pending;   /* first block of the new state */
    uint32_t start = d->seg_start;
    bool was_tone = d->tone;
    d->pending = 0;
    d->tone = tone;
    d->seg_start = change;
    return segment_end(d, was_tone, start, change - start, change);
}

bool busytone_process(busytone_t *d, const int16_t *x, int n)
{
    bool declared = false;
    while (n > 0) {
        int take = BUSY_BLOCK - d->n < n ? BUSY_BLOCK - d->n : n;
        feed(d->s1, d->s2, &d->energy, x, take);
        d->n += take;
        x += take;
        n -= take;
        if (d->n == BUSY_BLOCK) {
            bool tone = tone_in(d->s1, d->s2, d->energy, BUSY_BLOCK, NULL);
            memset(d->s1, 0, sizeof d->s1);
            memset(d->s2, 0, sizeof d->s2);
            d->energy = 0.0f;
            d->n = 0;
            if (block_done(d, tone))
                declared = true;
        }
    }
    return declared;
}
