/* test_protocol.c - the whole board through the mock HAL: CAPS, PONG, ACK
 * status codes, STATUS period, events, audio both ways, bad frames. */
#include <math.h>
#include <string.h>
#include "board.h"
#include "g711.h"
#include "mock_hal.h"
#include "signals.h"
#include "testlib.h"

static board_t board;

static void setup(void)
{
    const uint8_t kinds[2] = {HAL_PORT_FXS, HAL_PORT_FXO};
    mock_reset(2, kinds);
    board_init(&board);
    mock_run(&board, 5);
    mock_host_flush();
}

/* Send a command and return the ACK status (-1 if no ACK for its seq). */
static int command(uint8_t type, uint8_t port, const uint8_t *payload, uint16_t len)
{
    frame_t f;
    uint8_t seq = mock.host_seq;
    mock_host_send(type, port, payload, len);
    mock_run(&board, 2);
    if (!mock_host_expect(FT_ACK, &f) || f.len != 2 || f.payload[0] != seq)
        return -1;
    return f.payload[1];
}

static void test_hello_caps_golden(void)
{
    frame_t f;
    setup();
    const uint8_t hello = 1;
    mock_host_send(FT_HELLO, 0xFF, &hello, 1);
    mock_run(&board, 1);
    CHECK(mock_host_expect(FT_CAPS, &f));
    CHECK_EQ(f.seq, 0);                            /* CAPS starts the seq afresh */
    /* PROTOCOL.md example layout, serial "MOCK01". */
    const uint8_t want[] = {1, 1, 0, 2, 1, 1, 2, 1, 6, 'M', 'O', 'C', 'K', '0', '1'};
    CHECK_EQ(f.port, 0xFF);
    CHECK_EQ(f.len, sizeof want);
    CHECK(memcmp(f.payload, want, sizeof want) == 0);
    mock_run(&board, 1000);
    CHECK(mock_host_recv(&f));                     /* the next frame: seq 1 */
    CHECK_EQ(f.seq, 1);
}

/* PROTOCOL.md "Two B channels": a host asking for BAUDIO (HELLO host_features bit 0) gets the
 * same CAPS from this firmware, which has no BRI port: no flags bit 2, so the host keeps AUDIO;
 * a stray BAUDIO (0x32) is not a command: neither ACKed nor played. */
static void test_hello_with_host_features_and_stray_baudio(void)
{
    frame_t f;
    setup();
    const uint8_t hello[2] = {1, 0x01};
    mock_host_send(FT_HELLO, 0xFF, hello, 2);
    mock_run(&board, 1);
    CHECK(mock_host_expect(FT_CAPS, &f));
    const uint8_t want[] = {1, 1, 0, 2, 1, 1, 2, 1, 6, 'M', 'O', 'C', 'K', '0', '1'};
    CHECK_EQ(f.len, sizeof want);
    CHECK(memcmp(f.payload, want, sizeof want) == 0);
    uint8_t baudio[1 + HAL_FRAME_SAMPLES];
    memset(baudio, 0x55, sizeof baudio);
    baudio[0] = 1;
    mock_host_flush();
    mock_host_send(0x32, 0, baudio, sizeof baudio);
    mock_run(&board, 2);
    CHECK(!mock_host_expect(FT_ACK, &f));
    mock_host_send(FT_PING, 0xFF, (const uint8_t[]){0, 0, 0, 7}, 4);   /* the link still answers */
    mock_run(&board, 1);
    CHECK(mock_host_expect(FT_PONG, &f));
}

static void test_ping_pong(void)
{
    frame_t f;
    setup();
    const uint8_t token[4] = {0xDE, 0xAD, 0x00, 0x01};
    mock_host_send(FT_PING, 0xFF, token, 4);
    mock_run(&board, 1);
    CHECK(mock_host_expect(FT_PONG, &f));
    CHECK(f.len == 4 && memcmp(f.payload, token, 4) == 0);
    mock_host_send(FT_PING, 0xFF, token, 3);      /* malformed: no answer */
    mock_run(&board, 1);
    CHECK(!mock_host_expect(FT_PONG, &f));
}

static void test_ack_status_codes(void)
{
    setup();
    const uint8_t ring_fr[] = {0, 0, 0, 0};
    CHECK_EQ(command(FT_RING, 0, ring_fr, sizeof ring_fr), 0);
    CHECK_EQ(command(FT_RING, 1, ring_fr, sizeof ring_fr), 4);        /* FXO: unsupported */
    CHECK_EQ(command(FT_RING, 7, ring_fr, sizeof ring_fr), 1);        /* no such port */
    CHECK_EQ(command(FT_RING, 0xFF, ring_fr, sizeof ring_fr), 1);
    CHECK_EQ(command(FT_STOP_RING, 0, NULL, 0), 0);
    const uint8_t bad_len[] = {0, 1, 5, '1'};                         /* number runs past */
    CHECK_EQ(command(FT_RING, 0, bad_len, sizeof bad_len), 3);
    const uint8_t bad_cadence[] = {9, 0, 0, 0};
    CHECK_EQ(command(FT_RING, 0, bad_cadence, sizeof bad_cadence), 3);
    CHECK_EQ(command(FT_OFFHOOK, 0, NULL, 0), 4);                     /* FXS cannot seize */
    CHECK_EQ(command(FT_ONHOOK, 1, NULL, 0), 0);
    const uint8_t dial[] = {3, '1', '2', '3'};
    CHECK_EQ(command(FT_DIAL, 1, dial, sizeof dial), 2);              /* on-hook: bad state */
    const uint8_t gain_ok[] = {(uint8_t)-12, 12}, gain_bad[] = {13, 0};
    CHECK_EQ(command(FT_SET_GAIN, 0, gain_ok, 2), 0);
    CHECK_EQ(command(FT_SET_GAIN, 0, gain_bad, 2), 3);
    const uint8_t tone_dial = 1, tone_bad = 5;
    CHECK_EQ(command(FT_TONE, 0, &tone_dial, 1), 0);
    CHECK_EQ(command(FT_TONE, 0, &tone_bad, 1), 3);
    CHECK_EQ(command(FT_TONE, 1, &tone_dial, 1), 4);
    CHECK_EQ(command(0x1F, 0, NULL, 0), 4);                           /* unknown command */
    frame_t f;
    mock_host_send(0x27, 0, NULL, 0);             /* not a command: ignored */
    mock_run(&board, 2);
    CHECK(!mock_host_expect(FT_ACK, &f));
}

static void test_status_period_and_changes(void)
{
    frame_t f;
    setup();
    mock.line_value[1] = -480;                      /* 48 V, reversed */
    mock.alarms[1] = 0;
    int n = 0;
    mock_run(&board, 3000);
    while (mock_host_expect(FT_STATUS, &f)) {
        n++;
        CHECK_EQ(f.len, 8);
        CHECK_EQ(f.port, 0xFF);
        CHECK_EQ((int16_t)((f.payload[5] << 8) | f.payload[6]), -480);
    }
    CHECK_EQ(n, 3);                                /* every 1 s */
    mock.slic_offhook[0] = true;
    mock_run(&board, 40);
    CHECK(mock_host_expect(FT_EV_OFF_HOOK, &f));
    CHECK_EQ(f.port, 0);
    CHECK(mock_host_expect(FT_STATUS, &f));        /* at once, not at the next second */
    CHECK_EQ(f.payload[0], 1);
    mock.alarms[1] = 1;                            /* line pulled out */
    mock_run(&board, 2);
    CHECK(mock_host_expect(FT_STATUS, &f));
    CHECK_EQ(f.payload[7], 1);
}

/* Phone keys "5" then speaks a 1 kHz tone. */
static void phone_source(uint8_t port, uint32_t now, int16_t *pcm)
{
    (void)port;
    float lo, hi;
    if (now >= 1000 && now < 1100 && dtmf_freqs('5', &lo, &hi)) {
        sig_add_tone(pcm, 160, lo, -10.0f, 2.0f * 3.14159265f * lo * (float)(now % 1000) / 1000.0f);
        sig_add_tone(pcm, 160, hi, -10.0f, 2.0f * 3.14159265f * hi * (float)(now % 1000) / 1000.0f);
    } else if (now >= 1500) {
        sig_add_tone(pcm, 160, 1000.0f, -10.0f, 0.0f);   /* 20 ms = 20 cycles: continuous */
    }
}

static void test_fxs_call_audio_both_ways(void)
{
    frame_t f;
    setup();
    mock.source[0] = phone_source;
    mock.slic_offhook[0] = true;
    mock_run(&board, 1400);
    CHECK(mock_host_expect(FT_EV_OFF_HOOK, &f));
    mock.out_pos = 0;                              /* rescan from the start */
    frame_rx_init(&mock.host_rx);
    CHECK(mock_host_expect(FT_EV_DTMF, &f));
    CHECK(f.len == 3 && f.payload[0] == '5');
    int dur = (f.payload[1] << 8) | f.payload[2];
    CHECK(dur >= 90 && dur <= 110);

    /* AUDIO to the host: one frame per 20 ms, carrying the phone's 1 kHz. */
    mock_host_flush();
    mock_run(&board, 1000);
    int frames = 0;
    uint8_t last[160];
    while (mock_host_expect(FT_AUDIO, &f)) {
        frames++;
        CHECK_EQ(f.len, 160);
        CHECK_EQ(f.port, 0);
        memcpy(last, f.payload, 160);
    }
    CHECK_EQ(frames, 50);
    CHECK(memcmp(last, mock.codec_in[0], 160) == 0);

    /* AUDIO from the host is played to the phone. */
    uint8_t pay[160];
    for (int i = 0; i < 160; i++)
        pay[i] = ulaw_encode((int16_t)(8000 * sin(2 * 3.14159265 * 400 * i / 8000.0)));
    int before = mock.captured[0];
    for (int k = 0; k < 10; k++) {
        mock_host_send(FT_AUDIO, 0, pay, 160);
        mock_run(&board, 20);
    }
    int match = 0;
    for (int k = before; k + 160 <= mock.captured[0]; k += 160) {
        bool same = true;
        for (int i = 0; i < 160; i++)
            same &= mock.capture[0][k + i] == ulaw_decode(pay[i]);
        match += same;
    }
    CHECK(match >= 9);
    CHECK_EQ(command(FT_TONE, 0, (const uint8_t[]){1}, 1), 0);   /* dial tone overrides */
    mock_run(&board, 100);
    int16_t *t = &mock.capture[0][mock.captured[0] - 160];
    int crossings = 0;
    for (int i = 1; i < 160; i++)
        crossings += (t[i - 1] < 0) != (t[i] < 0);
    CHECK(crossings >= 16 && crossings <= 19);     /* 440 Hz over 20 ms: ~17.6 */
}

static void test_gain(void)
{
    frame_t f;
    setup();
    mock.source[0] = phone_source;
    CHECK_EQ(command(FT_SET_GAIN, 0, (const uint8_t[]){0, 6}, 2), 0);
    mock.slic_offhook[0] = true;
    mock_run(&board, 1700);
    mock_host_flush();
    mock_run(&board, 100);
    CHECK(mock_host_expect(FT_AUDIO, &f));
    double in = 0, out = 0;
    for (int i = 0; i < 160; i++) {
        in += fabs((double)ulaw_decode(mock.codec_in[0][i]));
        out += fabs((double)ulaw_decode(f.payload[i]));
    }
    CHECK(out / in > 1.9 && out / in < 2.1);       /* +6 dB toward the host */
}

static void test_fxo_call_through_board(void)
{
    frame_t f;
    setup();
    mock.daa_ring[0 + 1] = true;
    mock_run(&board, 100);
    CHECK(mock_host_expect(FT_EV_RING_START, &f));
    CHECK_EQ(f.port, 1);
    CHECK_EQ(command(FT_OFFHOOK, 1, NULL, 0), 0);
    CHECK(mock.daa_relay[1]);
    mock.daa_ring[1] = false;
    const uint8_t dial[] = {2, '4', '2'};
    CHECK_EQ(command(FT_DIAL, 1, dial, sizeof dial), 0);
    mock_run(&board, 600);
    dtmf_det_t d;
    dtmf_hit_t hits[8];
    dtmf_det_init(&d);
    int n = dtmf_det_process(&d, mock.capture[1], mock.captured[1], hits, 8);
    CHECK_EQ(n, 2);
    CHECK(n == 2 && hits[0].digit == '4' && hits[1].digit == '2');
    mock_host_flush();
    mock_run(&board, 200);
    int frames = 0;
    while (mock_host_expect(FT_AUDIO, &f))
        frames += f.port == 1;
    CHECK_EQ(frames, 10);                          /* seized: audio flows */
    CHECK_EQ(command(FT_ONHOOK, 1, NULL, 0), 0);
    mock.out_pos = 0;
    frame_rx_init(&mock.host_rx);
    CHECK(mock_host_expect(FT_EV_ON_HOOK, &f));
    CHECK_EQ(f.port, 1);
}

static void test_bad_host_frames_dropped(void)
{
    frame_t f;
    uint8_t out[FRAME_MAX_ENCODED];
    setup();
    int n = frame_encode(FT_STOP_RING, 0, 0, NULL, 0, out);
    out[1] ^= 0x01;                                /* CRC error */
    mock_host_raw(out, n);
    mock_host_raw((const uint8_t[]){0x09, 0x11, 0x00}, 3);   /* bad COBS */
    mock_run(&board, 5);
    CHECK(!mock_host_expect(FT_ACK, &f));          /* never answered */
    CHECK_EQ(board.rx.stats.crc_errors, 1);
    CHECK_EQ(board.rx.stats.framing_errors, 1);
    mock.host_seq = 5;                             /* host seq jumps: 0 -> 5 */
    CHECK_EQ(command(FT_STOP_RING, 0, NULL, 0), 0);
    CHECK_EQ(board.rx.stats.frames, 1);
}

static void test_watchdog_and_tx_drops(void)
{
    frame_t f;
    setup();
    int kicks = mock.kicks;
    mock_run(&board, 1000);
    CHECK(mock.kicks - kicks >= 9 && mock.kicks - kicks <= 10);   /* every 100 ms */
    mock.serial_refuse = true;                     /* USB buffer full: frames dropped */
    mock_host_send(FT_PING, 0xFF, (const uint8_t[]){1, 2, 3, 4}, 4);
    mock_run(&board, 1);
    CHECK_EQ(board.tx_drops, 1);
    mock.serial_refuse = false;
    mock_host_send(FT_PING, 0xFF, (const uint8_t[]){1, 2, 3, 4}, 4);
    mock_run(&board, 1);
    uint32_t gaps = mock.host_rx.stats.seq_gaps;
    CHECK(mock_host_expect(FT_PONG, &f));
    CHECK_EQ(mock.host_rx.stats.seq_gaps, gaps + 1);   /* the host sees the loss */

    wdt_t w;                                       /* a task that stops checking in */
    wdt_init(&w, WDT_TASK_LINK | WDT_TASK_AUDIO, 100, 0);
    kicks = mock.kicks;
    for (uint32_t t = 1; t <= 1000; t++) {
        wdt_checkin(&w, WDT_TASK_LINK);
        if (t < 500)
            wdt_checkin(&w, WDT_TASK_AUDIO);
        wdt_service(&w, t);
    }
    CHECK_EQ(mock.kicks - kicks, 5);               /* 100..500 (check-ins up to 499), then none */
}

void suite_protocol(void)
{
    RUN(test_hello_caps_golden);
    RUN(test_hello_with_host_features_and_stray_baudio);
    RUN(test_ping_pong);
    RUN(test_ack_status_codes);
    RUN(test_status_period_and_changes);
    RUN(test_fxs_call_audio_both_ways);
    RUN(test_gain);
    RUN(test_fxo_call_through_board);
    RUN(test_bad_host_frames_dropped);
    RUN(test_watchdog_and_tx_drops);
}
