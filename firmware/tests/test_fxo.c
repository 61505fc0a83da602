/* test_fxo.c - every FXO transition: ring -> caller ID -> answer -> release,
 * RING_STOP after 6 s, polarity, DTMF CLIP receive, dialling. */
#include <stdio.h>
#include <string.h>
#include "fxo.h"
#include "g711.h"
#include "mock_hal.h"
#include "testlib.h"

static fxo_t fo;
static evq_t q;
static dtmf_det_t det;

static void setup(void)
{
    const uint8_t kinds[1] = {HAL_PORT_FXO};
    mock_reset(1, kinds);
    evq_init(&q);
    fxo_init(&fo, 0, 0);
    dtmf_det_init(&det);
}

/* Run ms; line audio from src (may be NULL) in 20 ms frames, as board.c does. */
static void run_audio(uint32_t ms, const int16_t *src, int src_len, int *src_pos)
{
    for (uint32_t i = 0; i < ms; i++) {
        mock.now++;
        fxo_poll(&fo, mock.now, &q);
        if (mock.now % 20 == 0) {
            int16_t buf[160] = {0};
            for (int k = 0; src && k < 160 && *src_pos < src_len; k++)
                buf[k] = ulaw_decode(ulaw_encode(src[(*src_pos)++]));
            dtmf_hit_t hits[4];
            int n = dtmf_det_process(&det, buf, 160, hits, 4);
            fxo_audio_in(&fo, mock.now, buf, 160, hits, n, &q);
        }
    }
}

static void run(uint32_t ms)
{
    run_audio(ms, NULL, 0, NULL);
}

static bool next(event_t *e)
{
    return evq_take(&q, e);
}

static int next_event(void)
{
    event_t e;
    return next(&e) ? e.type : 0;
}

static void test_ring_start_once_and_ring_stop_6s(void)
{
    setup();
    run(50);
    for (int burst = 0; burst < 3; burst++) {     /* FR cadence: 1.5 s on, 3.5 s off */
        mock.daa_ring[0] = true;
        run(1500);
        mock.daa_ring[0] = false;
        if (burst < 2)
            run(3500);
    }
    CHECK_EQ(next_event(), FT_EV_RING_START);     /* one per call, not per burst */
    CHECK_EQ(next_event(), 0);
    CHECK_EQ(fo.state, FXO_RINGING);
    uint32_t end = mock.now + 1;                  /* last burst ends (first sampled) */
    run(5999);
    CHECK_EQ(next_event(), 0);
    CHECK_EQ(fo.state, FXO_RINGING);
    while (fo.state == FXO_RINGING && mock.now < end + 7000)
        run(1);
    CHECK_EQ(mock.now - end, 6000);
    CHECK_EQ(next_event(), FT_EV_RING_STOP);
    CHECK_EQ(fo.state, FXO_IDLE);
}

static void test_ring_glitch_ignored(void)
{
    setup();
    mock.daa_ring[0] = true;
    run(20);                                      /* shorter than the 30 ms debounce */
    mock.daa_ring[0] = false;
    run(100);
    CHECK_EQ(next_event(), 0);
    CHECK_EQ(fo.state, FXO_IDLE);
}

static void test_ring_caller_id_answer_release(void)
{
    static int16_t line[8000 * 2];
    uint8_t msg[CID_MSG_MAX];
    int len = cid_build_mdmf("0612345678", 10, "Alice", 5, msg);
    fsk_mod_t m;
    setup();
    mock.daa_ring[0] = true;                      /* first burst */
    run(1500);
    mock.daa_ring[0] = false;
    CHECK_EQ(next_event(), FT_EV_RING_START);
    run(500);
    fsk_mod_start(&m, FSK_V23, msg, len, -13.0f); /* FSK 500 ms into the silence */
    memset(line, 0, sizeof line);
    fsk_mod_fill(&m, line, 8000);
    int pos = 0;
    run_audio(2000, line, 8000 * 2, &pos);
    event_t e;
    CHECK(next(&e));
    CHECK_EQ(e.type, FT_EV_CALLER_ID);
    CHECK_EQ(e.len, 1 + 10 + 1 + 5);
    CHECK(e.data[0] == 10 && memcmp(e.data + 1, "0612345678", 10) == 0);
    CHECK(e.data[11] == 5 && memcmp(e.data + 12, "Alice", 5) == 0);
    CHECK_EQ(next_event(), 0);                    /* once, although two demodulators run */

    CHECK_EQ(fxo_offhook(&fo), CMD_OK);           /* answer */
    CHECK(mock.daa_relay[0]);
    CHECK_EQ(fo.state, FXO_OFFHOOK);
    mock.daa_ring[0] = true;                      /* ring detect means nothing now */
    run(1000);
    mock.daa_ring[0] = false;
    run(7000);
    CHECK_EQ(next_event(), 0);
    CHECK_EQ(fo.state, FXO_OFFHOOK);
    CHECK_EQ(fxo_offhook(&fo), CMD_OK);           /* idempotent */
    CHECK_EQ(fxo_onhook(&fo, &q), CMD_OK);
    CHECK(!mock.daa_relay[0]);
    CHECK_EQ(fo.state, FXO_IDLE);
    CHECK_EQ(next_event(), FT_EV_ON_HOOK);
    CHECK_EQ(fxo_onhook(&fo, &q), CMD_OK);        /* idempotent, no second event */
    CHECK_EQ(next_event(), 0);
}

static void test_dtmf_clip_receive(void)
{
    static int16_t line[8000 * 4];
    dtmf_gen_t g;
    setup();
    dtmf_gen_start(&g, "A0612345678C", 12, 70, 70, -12.0f);
    dtmf_gen_fill(&g, line, 8000 * 2);
    int pos = 0;
    run_audio(2500, line, 8000 * 2, &pos);
    event_t e;
    CHECK(next(&e));
    CHECK_EQ(e.type, FT_EV_CALLER_ID);
    CHECK(e.data[0] == 10 && memcmp(e.data + 1, "0612345678", 10) == 0);
    CHECK_EQ(e.data[11], 0);                      /* DTMF CLIP carries no name */

    dtmf_gen_start(&g, "A123", 4, 70, 70, -12.0f); /* no 'C': ends by timeout */
    memset(line, 0, sizeof line);
    dtmf_gen_fill(&g, line, 8000);
    pos = 0;
    run_audio(800, line, 8000, &pos);
    CHECK_EQ(next_event(), 0);
    run(1500);
    CHECK(next(&e));
    CHECK(e.type == FT_EV_CALLER_ID && e.data[0] == 3 && memcmp(e.data + 1, "123", 3) == 0);
}

static void test_polarity_events(void)
{
    event_t e;
    setup();
    run(10);
    mock.daa_pol[0] = true;                       /* far end answered */
    run(29);
    CHECK_EQ(next_event(), 0);
    run(2);
    CHECK(next(&e));
    CHECK(e.type == FT_EV_POLARITY && e.len == 1 && e.data[0] == 1);
    mock.daa_pol[0] = false;                      /* a 10 ms glitch: nothing */
    run(10);
    mock.daa_pol[0] = true;
    run(100);
    CHECK_EQ(next_event(), 0);
    mock.daa_pol[0] = false;                      /* far end hung up */
    run(40);
    CHECK(next(&e));
    CHECK(e.type == FT_EV_POLARITY && e.data[0] == 0);
}

static void test_dial(void)
{
    setup();
    CHECK_EQ(fxo_dial(&fo, "123", 3), CMD_BAD_STATE);     /* on-hook */
    CHECK_EQ(fxo_offhook(&fo), CMD_OK);
    CHECK_EQ(fxo_dial(&fo, "12x", 3), CMD_BAD_ARG);
    CHECK_EQ(fxo_dial(&fo, "12A", 3), CMD_BAD_ARG);       /* DIAL is 0-9 * # */
    CHECK_EQ(fxo_dial(&fo, "0612", 4), CMD_OK);
    CHECK_EQ(fxo_dial(&fo, "*#9", 3), CMD_OK);            /* appended while dialling */
    dtmf_det_t d;
    dtmf_hit_t hits[4];
    char got[16];
    int n = 0, tone_frames = 0;
    dtmf_det_init(&d);
    for (int f = 0; f < 100; f++) {                       /* 2 s */
        int16_t buf[160] = {0};
        if (fxo_audio_out(&fo, buf, 160))
            tone_frames++;
        int k = dtmf_det_process(&d, buf, 160, hits, 4);
        for (int i = 0; i < k && n < 15; i++) {
            got[n++] = hits[i].digit;
            if (!CHECK(hits[i].duration_ms >= 90 && hits[i].duration_ms <= 110))   /* 100 ms on */
                fprintf(stderr, "  %c %d ms\n", hits[i].digit, hits[i].duration_ms);
        }
    }
    got[n] = 0;
    CHECK(strcmp(got, "0612*#9") == 0);
    CHECK_EQ(tone_frames, 7 * 10);                        /* 7 x 200 ms, then quiet */
    CHECK_EQ(fxo_onhook(&fo, &q), CMD_OK);
    CHECK_EQ(fxo_dial(&fo, "1", 1), CMD_BAD_STATE);
}

void suite_fxo(void)
{
    RUN(test_ring_start_once_and_ring_stop_6s);
    RUN(test_ring_glitch_ignored);
    RUN(test_ring_caller_id_answer_release);
    RUN(test_dtmf_clip_receive);
    RUN(test_polarity_events);
    RUN(test_dial);
}
