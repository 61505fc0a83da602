/* test_busytone.c - busy/congestion detector: block classifier, every E.180
 * cadence found in 2-3 s, speech, dial tone and ringback rejected, and the
 * whole board posting BUSY_TONE once per seizure. */
#include <stdio.h>
#include <string.h>
#include "board.h"
#include "busytone.h"
#include "g711.h"
#include "mock_hal.h"
#include "signals.h"
#include "testlib.h"

#define RATE 8000
#define MAX_S 16
static int16_t line[RATE * MAX_S];

/* Feed x in 20 ms codec frames (mu-law as on the line); the first detection
 * time in ms (-1 if none) and the number of detections. */
static int detect(const int16_t *x, int n, int *count)
{
    busytone_t d;
    int at = -1;
    busytone_init(&d);
    *count = 0;
    for (int i = 0; i + 160 <= n; i += 160) {
        int16_t frame[160];
        memcpy(frame, x + i, sizeof frame);
        sig_ulaw(frame, 160);
        if (busytone_process(&d, frame, 160)) {
            if (at < 0)
                at = (i + 160) / 8;
            (*count)++;
        }
    }
    return at;
}

static void block_of(int16_t *x, float f1, float f2, float dbm0)
{
    memset(x, 0, 160 * sizeof *x);
    sig_add_tone(x, 160, f1, dbm0, 0.3f);
    if (f2 > 0.0f)
        sig_add_tone(x, 160, f2, dbm0, 1.1f);
    sig_ulaw(x, 160);
}

static void test_busy_classify_blocks(void)
{
    int16_t x[160];
    float dbm0;
    const float yes[] = {400, 410, 425, 440, 450, 470, 480};
    for (unsigned i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        block_of(x, yes[i], 0, -20.0f);
        if (!CHECK(busytone_classify(x, 160, &dbm0)))
            fprintf(stderr, "  %.0f Hz not a busy tone\n", yes[i]);
    }
    CHECK(dbm0 > -21.0f && dbm0 < -19.0f);
    block_of(x, 480, 620, -24.0f);                /* North American busy pair */
    CHECK(busytone_classify(x, 160, NULL));
    block_of(x, 440, 0, -33.0f);                  /* weak but above -36 dBm0 */
    CHECK(busytone_classify(x, 160, NULL));
    block_of(x, 440, 0, -45.0f);                  /* too weak */
    CHECK(!busytone_classify(x, 160, NULL));
    block_of(x, 350, 440, -13.0f);                /* US dial tone: two tones, 440 holds half */
    CHECK(!busytone_classify(x, 160, NULL));
    block_of(x, 1000, 0, -10.0f);
    CHECK(!busytone_classify(x, 160, NULL));
    block_of(x, 300, 0, -10.0f);
    CHECK(!busytone_classify(x, 160, NULL));
    block_of(x, 620, 0, -10.0f);                  /* 620 alone is not the pair */
    CHECK(!busytone_classify(x, 160, NULL));
    uint32_t seed = 7;
    memset(x, 0, sizeof x);
    sig_add_noise(x, 160, -10.0f, &seed);         /* white noise */
    CHECK(!busytone_classify(x, 160, NULL));
    block_of(x, 440, 0, -20.0f);                  /* 440 Hz 10 dB above noise: still a tone */
    sig_add_noise(x, 160, -30.0f, &seed);
    CHECK(busytone_classify(x, 160, NULL));
}

typedef struct {
    const char *name;
    float f1, f2, dbm0;
    int on_ms, off_ms;
} cadence_t;

static void test_busy_cadences_detected_in_2_to_3_s(void)
{
    static const cadence_t cads[] = {
        {"FR busy 440 0.5/0.5", 440, 0, -20.0f, 500, 500},
        {"UK busy 400 0.375/0.375", 400, 0, -20.0f, 375, 375},
        {"US busy 480+620 0.5/0.5", 480, 620, -24.0f, 500, 500},
        {"congestion 440 0.25/0.25", 440, 0, -20.0f, 250, 250},
        {"US reorder 480+620 0.25/0.25", 480, 620, -24.0f, 250, 250},
        {"E.180 425 0.5/0.5", 425, 0, -20.0f, 500, 500},
        {"FR busy weak -32 dBm0", 440, 0, -32.0f, 500, 500},
    };
    const int leads[] = {0, 7, 13};               /* the tone starts mid-block */
    for (unsigned c = 0; c < sizeof cads / sizeof cads[0]; c++) {
        for (unsigned l = 0; l < 3; l++) {
            int lead = leads[l] * 8, n = RATE * 10, count;
            uint32_t seed = 11 + c;
            const int ms[2] = {cads[c].on_ms, cads[c].off_ms};
            memset(line, 0, sizeof line);
            sig_add_cadence(line + lead, n - lead, cads[c].f1, cads[c].f2, cads[c].dbm0, ms, 2);
            sig_add_noise(line, n, -50.0f, &seed);
            int at = detect(line, n, &count) - leads[l];
            if (!CHECK(at >= 2000 && at <= 3000) || !CHECK_EQ(count, 1))
                fprintf(stderr, "  %s (lead %d ms): at %d ms, %d detections\n", cads[c].name,
                        leads[l], at, count);
        }
    }
}

/* Syllables 120-450 ms with gaps of 60-400 ms: a voiced harmonic series
 * (F0 100-250 Hz, gliding) over a noise floor. */
static void speech_like(int16_t *x, int n, uint32_t seed)
{
    int i = 0;
    sig_add_noise(x, n, -45.0f, &seed);
    while (i < n) {
        seed = seed * 1664525u + 1013904223u;
        int len = (120 + (int)(seed >> 8) % 330) * 8;
        seed = seed * 1664525u + 1013904223u;
        float f0 = 100.0f + (float)((seed >> 8) % 150);
        seed = seed * 1664525u + 1013904223u;
        int gap = (60 + (int)(seed >> 8) % 340) * 8;
        if (len > n - i)
            len = n - i;
        for (int h = 1; h <= 10; h++) {
            /* pitch glides by up to 20 %: one sine per 40 ms piece */
            for (int p = 0; p < len; p += 320) {
                int m = len - p < 320 ? len - p : 320;
                float f = f0 * (1.0f + 0.2f * (float)p / (float)len) * (float)h;
                if (f < 3800.0f)
                    sig_add_tone(x + i + p, m, f, -15.0f - 3.0f * (float)h, (float)h);
            }
        }
        i += len + gap;
    }
}

static void test_busy_not_detected_in_other_signals(void)
{
    static const struct {
        const char *name;
        float f1, f2;
        int ms[4], nms, seconds;
    } others[] = {
        {"dial tone 440 continuous", 440, 0, {1000, 0}, 1, 10},
        {"US dial tone 350+440", 350, 440, {1000, 0}, 1, 10},
        {"FR ringback 440 1.5/3.5", 440, 0, {1500, 3500}, 2, 16},
        {"US ringback 440+480 2/4", 440, 480, {2000, 4000}, 2, 16},
        {"UK ringback 400+450 0.4/0.2/0.4/2.0", 400, 450, {400, 200, 400, 2000}, 4, 12},
        {"UK ringback 400 single 0.4/0.2/0.4/2.0", 400, 0, {400, 200, 400, 2000}, 4, 12},
        {"440 0.5 on / 1.5 off (not equal)", 440, 0, {500, 1500}, 2, 12},
        {"440 0.6/0.2 (unequal)", 440, 0, {600, 200}, 2, 10},
        {"440 0.2/0.6 (unequal)", 440, 0, {200, 600}, 2, 10},
        {"440 0.25/0.375/0.5/0.375 (not steady)", 440, 0, {250, 375, 500, 375}, 4, 10},
        {"440 1.0/1.0 (too slow)", 440, 0, {1000, 1000}, 2, 12},
        {"440 0.1/0.1 (too fast)", 440, 0, {100, 100}, 2, 8},
        {"1000 Hz 0.5/0.5 (wrong frequency)", 1000, 0, {500, 500}, 2, 8},
    };
    int count;
    for (unsigned k = 0; k < sizeof others / sizeof others[0]; k++) {
        int n = RATE * others[k].seconds;
        memset(line, 0, sizeof line);
        if (others[k].nms == 1)
            sig_add_cadence(line, n, others[k].f1, others[k].f2, -13.0f, others[k].ms, 1);
        else
            sig_add_cadence(line, n, others[k].f1, others[k].f2, -13.0f, others[k].ms, others[k].nms);
        int at = detect(line, n, &count);
        if (!CHECK_EQ(count, 0))
            fprintf(stderr, "  %s detected at %d ms\n", others[k].name, at);
    }
    for (uint32_t seed = 1; seed <= 4; seed++) {  /* 4 x 15 s of speech-like audio */
        memset(line, 0, sizeof line);
        speech_like(line, RATE * 15, seed * 977u);
        int at = detect(line, RATE * 15, &count);
        if (!CHECK_EQ(count, 0))
            fprintf(stderr, "  speech seed %u detected at %d ms\n", (unsigned)seed, at);
    }
    uint32_t seed = 99;
    memset(line, 0, sizeof line);
    sig_add_noise(line, RATE * 10, -20.0f, &seed);
    CHECK_EQ(detect(line, RATE * 10, &count), -1);
}

static void test_busy_cadence_must_be_steady(void)
{
    /* 1.5 s of FR busy, then a 1 s gap, then busy again: the count restarts. */
    const int ms[2] = {500, 500};
    int count;
    memset(line, 0, sizeof line);
    sig_add_cadence(line, RATE * 3 / 2, 440, 0, -20.0f, ms, 2);
    sig_add_cadence(line + RATE * 5 / 2, RATE * 5, 440, 0, -20.0f, ms, 2);
    int at = detect(line, RATE * 8, &count);
    CHECK(at >= 2500 + 2000 && at <= 2500 + 3000);
    CHECK_EQ(count, 1);
}

/* The whole board: BUSY_TONE only on a seized FXO line, once per seizure. */
static board_t board;
static int16_t fxo_cadence[RATE * 2];             /* 2 s period of FR busy, looped */
static int fxo_pos;

static void line_source(uint8_t port, uint32_t now, int16_t *pcm)
{
    (void)now;
    if (port != 1)
        return;
    for (int i = 0; i < 160; i++) {
        pcm[i] = fxo_cadence[fxo_pos];
        fxo_pos = (fxo_pos + 1) % (RATE * 2);
    }
}

/* Run until BUSY_TONE for port 1 or max_ms; its time after the start (-1). */
static int run_until_busy(uint32_t max_ms)
{
    frame_t f;
    uint32_t start = mock.now;
    while (mock.now - start < max_ms) {
        mock_run(&board, 20);
        while (mock_host_recv(&f))
            if (f.type == FT_EV_BUSY_TONE) {
                CHECK_EQ(f.port, 1);
                CHECK_EQ(f.len, 0);
                return (int)(mock.now - start);
            }
    }
    return -1;
}

static void test_busy_tone_event_once_per_seizure(void)
{
    const uint8_t kinds[2] = {HAL_PORT_FXS, HAL_PORT_FXO};
    const int ms[2] = {500, 500};
    memset(fxo_cadence, 0, sizeof fxo_cadence);
    sig_add_cadence(fxo_cadence, RATE * 2, 440, 0, -20.0f, ms, 2);
    fxo_pos = 0;
    mock_reset(2, kinds);
    mock.source[1] = line_source;
    board_init(&board);
    CHECK_EQ(run_until_busy(5000), -1);           /* idle line: not listened to */
    mock_host_send(FT_OFFHOOK, 1, NULL, 0);       /* seize */
    int at = run_until_busy(4000);
    CHECK(at >= 2000 && at <= 3100);
    CHECK_EQ(run_until_busy(6000), -1);           /* once, although the tone goes on */
    mock_host_send(FT_ONHOOK, 1, NULL, 0);
    CHECK_EQ(run_until_busy(3000), -1);
    mock_host_send(FT_OFFHOOK, 1, NULL, 0);       /* a new seizure re-arms it */
    at = run_until_busy(4000);
    CHECK(at >= 2000 && at <= 3100);
}

void suite_busytone(void)
{
    RUN(test_busy_classify_blocks);
    RUN(test_busy_cadences_detected_in_2_to_3_s);
    RUN(test_busy_not_detected_in_other_signals);
    RUN(test_busy_cadence_must_be_steady);
    RUN(test_busy_tone_event_once_per_seizure);
}
