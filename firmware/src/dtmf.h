/* dtmf.h - DTMF (ITU-T Q.23) detection with Goertzel filters and generation. */
#ifndef PLATEAU_DTMF_H
#define PLATEAU_DTMF_H
#include <stdbool.h>
#include <stdint.h>

/* 102-sample blocks (12.75 ms) for frequency resolution; a digit needs two
 * consecutive blocks.  Partly filled blocks still classify, so the duration
 * is measured apart, on the time envelope in 17-sample (2.1 ms) sub-blocks:
 * those holding at least 0.3 of the digit's tone power count. */
#define DTMF_BLOCK 102
#define DTMF_SUB 17
#define DTMF_NSUB (DTMF_BLOCK / DTMF_SUB)
#define DTMF_MIN_MS 30              /* Q.24: 40 ms must operate; 20 ms must not */
#define DTMF_MIN_DBM0 (-30.0f)      /* weakest accepted tone, per frequency */
#define DTMF_TWIST_MAX_DB 4.0f      /* high group stronger (reverse twist), Q.24 */
#define DTMF_TWIST_MIN_DB (-8.0f)   /* high group weaker (standard twist), Q.24 */

/** A detected digit, reported at its end. */
typedef struct {
    char digit;              /* '0'-'9', '*', '#', 'A'-'D' */
    uint16_t duration_ms;
} dtmf_hit_t;

typedef struct {
    float block[DTMF_BLOCK];
    int n;
    char cand;               /* digit seen in the last block(s), not yet confirmed */
    int cand_blocks;
    char digit;              /* confirmed digit in progress, 0 if none */
    int digit_blocks;
    int gap_blocks;          /* blocks without the digit since it was last seen */
    float sub[3][DTMF_NSUB]; /* sub-block energies of the last three blocks */
    float cand_power[2];     /* tone power per sample of the candidate blocks */
    float level;             /* tone power per sample of the digit */
    int loud;                /* sub-blocks of the digit at >= half its power */
} dtmf_det_t;

void dtmf_det_init(dtmf_det_t *d);
/** Classify one block of DTMF_BLOCK samples: the digit, or 0. Pure function;
 *  *power (may be NULL) gets the two tones' power per sample. */
char dtmf_classify(const float *x, float *power);
/** Feed n linear samples; writes up to max finished digits to hits and
 *  returns their count.  A digit needs two blocks with it, at least
 *  DTMF_MIN_MS of tone envelope, and ends after two blocks without it. */
int dtmf_det_process(dtmf_det_t *d, const int16_t *x, int n, dtmf_hit_t *hits, int max);

/** Row and column frequencies of a digit; false if not a DTMF key. */
bool dtmf_freqs(char digit, float *low_hz, float *high_hz);

/** Tone generator for a digit string: on_ms tone, off_ms silence each. */
typedef struct {
    char digits[40];
    int count, index;
    uint32_t sample;         /* sample index inside the current digit period */
    uint32_t on_samples, off_samples;
    float amplitude;         /* per tone, linear */
} dtmf_gen_t;

/** Start generating digits (unknown keys are skipped); level per tone in dBm0. */
void dtmf_gen_start(dtmf_gen_t *g, const char *digits, int len, int on_ms, int off_ms, float dbm0);
/** Append digits to a running (or finished) generator; returns false if full. */
bool dtmf_gen_append(dtmf_gen_t *g, const char *digits, int len);
bool dtmf_gen_busy(const dtmf_gen_t *g);
/** Fill n samples (silence after the last digit). */
void dtmf_gen_fill(dtmf_gen_t *g, int16_t *out, int n);

#endif
