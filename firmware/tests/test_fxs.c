/* test_fxs.c - every FXS transition: debounce, idle->ringing->off-hook, flash
 * vs hang-up edges, cadences, ring timeout, caller-ID timing. */
#include <string.h>
#include "fxs.h"
#include "mock_hal.h"
#include "testlib.h"

static fxs_t fx;
static evq_t q;

static void setup(void)
{
    const uint8_t kinds[1] = {HAL_PORT_FXS};
    mock_reset(1, kinds);
    evq_init(&q);
    fxs_init(&fx, 0, 0);
}

static void run(uint32_t ms)
{
    for (uint32_t i = 0; i < ms; i++) {
        mock.now++;
        fxs_poll(&fx, mock.now, &q);
    }
}

/* Next event type, or 0 if none. */
static int next_event(void)
{
    event_t e;
    return evq_take(&q, &e) ? e.type : 0;
}

static void go_offhook(void)
{
    mock.slic_offhook[0] = true;
    run(40);
    CHECK_EQ(next_event(), FT_EV_OFF_HOOK);
}

static void test_offhook_debounced_30ms(void)
{
    setup();
    run(100);
    mock.slic_offhook[0] = true;                  /* lifted; first sampled at t=101 */
    run(30);
    CHECK_EQ(next_event(), 0);
    CHECK_EQ(fxs_status(&fx), 0);
    run(1);                                       /* stable for 30 ms since t=101 */
    CHECK_EQ(next_event(), FT_EV_OFF_HOOK);
    CHECK_EQ(fxs_status(&fx), 1);
    CHECK_EQ(fx.state, FXS_OFFHOOK);
}

static void test_bounce_ignored(void)
{
    setup();
    for (int i = 0; i < 10; i++) {                /* 25 ms pulses never settle */
        mock.slic_offhook[0] = (i & 1) == 0;
        run(25);
    }
    mock.slic_offhook[0] = false;
    run(100);
    CHECK_EQ(next_event(), 0);
    CHECK_EQ(fx.state, FXS_IDLE);
}

/* On-hook for d ms from the off-hook state; returns the events seen. */
static void hook_pulse(uint32_t d, int *ev1, int *ev2)
{
    setup();
    go_offhook();
    mock.slic_offhook[0] = false;
    run(d);
    mock.slic_offhook[0] = true;
    run(100);
    *ev1 = next_event();
    *ev2 = next_event();
}

static void test_flash_timing_edges(void)
{
    int a, b;
    hook_pulse(79, &a, &b);                       /* under 80 ms: ignored */
    CHECK_EQ(a, 0);
    CHECK_EQ(fx.state, FXS_OFFHOOK);
    hook_pulse(80, &a, &b);                       /* 80 ms: flash */
    CHECK_EQ(a, FT_EV_FLASH);
    CHECK_EQ(b, 0);
    hook_pulse(500, &a, &b);
    CHECK_EQ(a, FT_EV_FLASH);
    hook_pulse(800, &a, &b);                      /* 800 ms: still a flash */
    CHECK_EQ(a, FT_EV_FLASH);
    CHECK_EQ(b, 0);
    CHECK_EQ(fx.state, FXS_OFFHOOK);
    hook_pulse(801, &a, &b);                      /* 801 ms: hung up, lifted again */
    CHECK_EQ(a, FT_EV_ON_HOOK);
    CHECK_EQ(b, FT_EV_OFF_HOOK);
    CHECK_EQ(fx.state, FXS_OFFHOOK);
}

static void test_onhook_after_800ms(void)
{
    setup();
    go_offhook();
    uint32_t t0 = mock.now + 1;
    mock.slic_offhook[0] = false;                 /* hung up, first sampled at t0 */
    run(790);
    CHECK_EQ(next_event(), 0);
    CHECK_EQ(fxs_status(&fx), 1);                 /* maybe a flash: still off-hook */
    CHECK_EQ(fx.state, FXS_HOOK_PENDING);
    while (fx.state != FXS_IDLE && mock.now < t0 + 2000)
        run(1);
    CHECK_EQ(mock.now - t0, 801);                 /* more than 800 ms */
    CHECK_EQ(next_event(), FT_EV_ON_HOOK);
    CHECK_EQ(fxs_status(&fx), 0);
}

/* Ring-relay changes over ms milliseconds, as on/off durations. */
static int ring_durations(uint32_t ms, uint32_t *dur, int max)
{
    int n = 0;
    bool last = mock.slic_ring[0];
    uint32_t since = mock.now;
    for (uint32_t i = 0; i < ms; i++) {
        run(1);
        if (mock.slic_ring[0] != last && n < max) {
            dur[n++] = mock.now - since;
            since = mock.now;
            last = mock.slic_ring[0];
        }
    }
    return n;
}

static void test_ring_cadences(void)
{
    static const uint32_t want[3][8] = {{1500, 3500, 1500, 3500, 1500, 3500},
                                        {400, 200, 400, 2000, 400, 200, 400, 2000},
                                        {2000, 4000, 2000, 4000}};
    static const int n_want[3] = {6, 8, 4};
    for (uint8_t c = 0; c < 3; c++) {
        setup();
        CHECK_EQ(fxs_ring(&fx, mock.now, c, CID_NONE, "", 0, "", 0), CMD_OK);
        CHECK(mock.slic_ring[0]);                 /* the first burst starts at once */
        CHECK_EQ(fxs_status(&fx), 2);
        uint32_t dur[8];
        int n = ring_durations(15000, dur, n_want[c]);
        CHECK_EQ(n, n_want[c]);
        for (int i = 0; i < n; i++)
            CHECK_EQ(dur[i], want[c][i]);
    }
}

static void test_ringing_to_offhook(void)
{
    setup();
    CHECK_EQ(fxs_ring(&fx, mock.now, CADENCE_FR, CID_NONE, "", 0, "", 0), CMD_OK);
    run(700);
    CHECK(mock.slic_ring[0]);
    mock.slic_offhook[0] = true;                  /* answered mid-burst */
    uint32_t t0 = mock.now;
    while (mock.slic_ring[0] && mock.now < t0 + 500)
        run(1);
    CHECK(mock.now - t0 <= 100);                  /* ringing stops within 100 ms */
    CHECK_EQ(next_event(), FT_EV_OFF_HOOK);
    CHECK_EQ(fx.state, FXS_OFFHOOK);
    run(10000);
    CHECK(!mock.slic_ring[0]);                    /* and stays off */
    CHECK_EQ(fxs_ring(&fx, mock.now, 0, 0, "", 0, "", 0), CMD_BAD_STATE);
}

static void test_ring_timeout_and_stop(void)
{
    setup();
    CHECK_EQ(fxs_ring(&fx, mock.now, CADENCE_US, CID_NONE, "", 0, "", 0), CMD_OK);
    run(119999);
    CHECK_EQ(fx.state, FXS_RINGING);
    run(1);                                       /* 120 s */
    CHECK_EQ(fx.state, FXS_IDLE);
    CHECK(!mock.slic_ring[0]);
    CHECK_EQ(next_event(), 0);

    CHECK_EQ(fxs_ring(&fx, mock.now, CADENCE_FR, CID_NONE, "", 0, "", 0), CMD_OK);
    run(1000);
    CHECK_EQ(fxs_ring(&fx, mock.now, CADENCE_FR, CID_NONE, "", 0, "", 0), CMD_OK); /* repeat: no restart */
    run(600);
    CHECK(!mock.slic_ring[0]);                    /* still the first cadence: off at 1.5 s */
    CHECK_EQ(fxs_stop_ring(&fx), CMD_OK);
    CHECK_EQ(fx.state, FXS_IDLE);
    CHECK_EQ(fxs_stop_ring(&fx), CMD_OK);         /* idempotent */
    CHECK_EQ(fxs_ring(&fx, mock.now, 3, 0, "", 0, "", 0), CMD_BAD_ARG);
    CHECK_EQ(fxs_ring(&fx, mock.now, 0, 4, "", 0, "", 0), CMD_BAD_ARG);
}

/* Run ms of ringing, pulling 20 ms of audio like the codec; returns the
 * time of the first non-silent sample (0 if none) and decodes caller ID. */
static uint32_t ring_audio(uint32_t ms, fsk_demod_t *dm, cid_t *cid, bool *found, uint32_t *last)
{
    uint32_t first = 0;
    int16_t buf[160];
    *last = 0;
    for (uint32_t t = 0; t < ms; t += 20) {
        run(20);
        memset(buf, 0, sizeof buf);
        if (fxs_audio(&fx, mock.now, buf, 160)) {
            bool loud = false;
            for (int i = 0; i < 160; i++)
                loud |= buf[i] > 1000 || buf[i] < -1000;
            if (loud && !first)
                first = mock.now;
            if (loud)
                *last = mock.now;
        }
        if (dm && fsk_demod_cid(dm, buf, 160, cid))
            *found = true;
    }
    return first;
}

static void check_fsk_cid(uint8_t cadence, uint8_t mode, uint32_t silence_start, uint32_t silence_end)
{
    setup();
    CHECK_EQ(fxs_ring(&fx, mock.now, cadence, mode, "0612345678", 10, "Alice", 5), CMD_OK);
    fsk_demod_t dm;
    cid_t cid;
    bool found = false;
    uint32_t last;
    fsk_demod_init(&dm, mode == CID_FSK_V23 ? FSK_V23 : FSK_BELL202);
    uint32_t first = ring_audio(8000, &dm, &cid, &found, &last);
    /* 500 ms into the first long silence (to the 20 ms codec frame). */
    CHECK(first >= silence_start + 500 && first <= silence_start + 520);
    CHECK(last < silence_end);                    /* finished before the next ring */
    CHECK(found);
    CHECK(strcmp(cid.number, "0612345678") == 0);
    CHECK(strcmp(cid.name, "Alice") == 0);
}

static void test_fsk_caller_id_timing(void)
{
    check_fsk_cid(CADENCE_FR, CID_FSK_V23, 1500, 5000);
    check_fsk_cid(CADENCE_UK, CID_FSK_V23, 1000, 3000);   /* after the double ring */
    check_fsk_cid(CADENCE_US, CID_FSK_BELL, 2000, 6000);
}

static void test_dtmf_clip_before_first_ring(void)
{
    setup();
    CHECK_EQ(fxs_ring(&fx, mock.now, CADENCE_FR, CID_DTMF, "0612345678", 10, "", 0), CMD_OK);
    CHECK(!mock.slic_ring[0]);                    /* the CLIP comes first */
    CHECK_EQ(fxs_status(&fx), 2);
    dtmf_det_t det;
    dtmf_hit_t hits[4];
    char got[32];
    int n = 0;
    uint32_t ring_at = 0;
    dtmf_det_init(&det);
    for (uint32_t t = 0; t < 4000; t += 20) {
        int16_t buf[160] = {0};
        run(20);
        if (mock.slic_ring[0] && !ring_at)
            ring_at = mock.now;
        if (fxs_audio(&fx, mock.now, buf, 160))
            CHECK(!mock.slic_ring[0]);            /* no audio while ringing voltage */
        int k = dtmf_det_process(&det, buf, 160, hits, 4);
        for (int i = 0; i < k && n < 31; i++)
            got[n++] = hits[i].digit;
    }
    got[n] = 0;
    CHECK(strcmp(got, "A0612345678C") == 0);
    /* 12 digits of 100 ms on / 100 ms off, then 500 ms to the first ring. */
    CHECK(ring_at >= 2900 && ring_at <= 2920);
}

void suite_fxs(void)
{
    RUN(test_offhook_debounced_30ms);
    RUN(test_bounce_ignored);
    RUN(test_flash_timing_edges);
    RUN(test_onhook_after_800ms);
    RUN(test_ring_cadences);
    RUN(test_ringing_to_offhook);
    RUN(test_ring_timeout_and_stop);
    RUN(test_fsk_caller_id_timing);
    RUN(test_dtmf_clip_before_first_ring);
}
