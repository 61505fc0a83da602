/* busytone.h - busy/congestion tone detector for FXO lines (hw/PROTOCOL.md
 * BUSY_TONE): Goertzel energy in 20 ms blocks, then on/off cadence timing.
 *
 * A block is "tone" when one frequency of 400-480 Hz (ITU-T E.180: 425 Hz
 * nominal, 400-450 Hz in use, FR 440, UK 400) or the North American pair
 * 480+620 Hz holds most of its energy.  Busy is declared once a steady
 * cadence of such tones has lasted 2 s: on and off each 180-650 ms, their
 * ratio within 0.6-1.67 (E.180 busy and congestion: FR 0.5/0.5, UK
 * 0.375/0.375, US 0.5/0.5, congestion 0.25/0.25), each burst and each gap
 * within 60 ms of the first ones.  Dial tone (continuous) and ringback
 * (1.5/3.5, 2/4, UK 0.4/0.2/0.4/2.0) fail the timing. */
#ifndef PLATEAU_BUSYTONE_H
#define PLATEAU_BUSYTONE_H
#include <stdbool.h>
#include <stdint.h>

#define BUSY_BLOCK 160              /* 20 ms at 8 kHz: 50 Hz resolution */
#define BUSY_BLOCK_MS 20
#define BUSY_NFREQ 6                /* 400 420 440 460 480 620 Hz */
#define BUSY_MIN_DBM0 (-36.0f)      /* weakest accepted tone (sum of both for 480+620) */
#define BUSY_TONE_SHARE 0.6f        /* share of the block's energy in the tone */
#define BUSY_SEG_MIN_MS 180         /* shortest burst or gap (congestion 250 ms) */
#define BUSY_SEG_MAX_MS 650         /* longest burst or gap (busy 500-550 ms) */
#define BUSY_SEG_TOL_MS 60          /* steadiness: later bursts/gaps vs the first */
#define BUSY_DETECT_MS 2000         /* steady cadence before BUSY_TONE */

typedef struct {
    /* Goertzel state of the block being filled */
    float s1[BUSY_NFREQ], s2[BUSY_NFREQ], energy;
    int n;
    /* debounced tone/no-tone segments, counted in blocks */
    uint32_t block;                 /* blocks completed */
    bool tone;                      /* debounced state */
    int pending;                    /* consecutive blocks disagreeing with it */
    uint32_t seg_start;             /* first block of the current segment */
    /* the cadence run being verified */
    int run_segments;               /* verified bursts and gaps; 0 = no run */
    uint32_t run_start;             /* first block of its first burst */
    uint32_t first_on, first_off;   /* its reference burst and gap, blocks */
    bool busy;                      /* declared (latched until busytone_init) */
} busytone_t;

void busytone_init(busytone_t *d);
/** Classify one block of n samples (n >= 80; pure function): true if a busy
 *  tone frequency holds most of its energy at an audible level.  *dbm0 (may
 *  be NULL) gets the block's total level. */
bool busytone_classify(const int16_t *x, int n, float *dbm0);
/** Feed n linear samples (any count; blocks span calls).  Returns true once,
 *  at the end of the block where a steady busy/congestion cadence reached
 *  BUSY_DETECT_MS; afterwards false until busytone_init. */
bool busytone_process(busytone_t *d, const int16_t *x, int n);

#endif
