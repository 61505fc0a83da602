/* test_framing.c - CRC and COBS golden vectors, frame round trips, bad frames. */
#include <string.h>
#include "cobs.h"
#include "crc16.h"
#include "frame.h"
#include "testlib.h"

static void test_crc_check_value(void)
{
    CHECK_EQ(crc16((const uint8_t *)"123456789", 9), 0x29B1);   /* CRC-16/CCITT-FALSE check */
    CHECK_EQ(crc16((const uint8_t *)"", 0), 0xFFFF);
    uint16_t c = crc16_update(CRC16_INIT, (const uint8_t *)"1234", 4);
    CHECK_EQ(crc16_update(c, (const uint8_t *)"56789", 5), 0x29B1);
}

static bool cobs_vector(const uint8_t *in, size_t n, const uint8_t *want, size_t wn)
{
    uint8_t enc[600], dec[600];
    size_t en = cobs_encode(in, n, enc);
    bool ok = CHECK_EQ(en, wn) && CHECK(memcmp(enc, want, wn) == 0);
    long dn = cobs_decode(enc, en, dec, sizeof dec);
    ok = CHECK_EQ(dn, (long)n) && ok;
    return CHECK(dn >= 0 && memcmp(dec, in, n) == 0) && ok;
}

static void test_cobs_golden(void)
{
    /* The examples of Cheshire & Baker / Wikipedia "Consistent Overhead Byte Stuffing". */
    cobs_vector((const uint8_t[]){0x00}, 1, (const uint8_t[]){0x01, 0x01}, 2);
    cobs_vector((const uint8_t[]){0x00, 0x00}, 2, (const uint8_t[]){0x01, 0x01, 0x01}, 3);
    cobs_vector((const uint8_t[]){0x00, 0x11, 0x00}, 3, (const uint8_t[]){0x01, 0x02, 0x11, 0x01}, 4);
    cobs_vector((const uint8_t[]){0x11, 0x22, 0x00, 0x33}, 4,
                (const uint8_t[]){0x03, 0x11, 0x22, 0x02, 0x33}, 5);
    cobs_vector((const uint8_t[]){0x11, 0x22, 0x33, 0x44}, 4,
                (const uint8_t[]){0x05, 0x11, 0x22, 0x33, 0x44}, 5);
    cobs_vector((const uint8_t[]){0x11, 0x00, 0x00, 0x00}, 4,
                (const uint8_t[]){0x02, 0x11, 0x01, 0x01, 0x01}, 5);
    cobs_vector((const uint8_t *)"", 0, (const uint8_t[]){0x01}, 1);

    uint8_t in[256], want[260];
    for (int i = 0; i < 254; i++)                 /* 01..FE -> FF 01..FE */
        in[i] = (uint8_t)(i + 1);
    want[0] = 0xFF;
    memcpy(want + 1, in, 254);
    cobs_vector(in, 254, want, 255);
    in[0] = 0;                                    /* 00 01..FE -> 01 FF 01..FE */
    for (int i = 1; i < 255; i++)
        in[i] = (uint8_t)i;
    want[0] = 0x01;
    want[1] = 0xFF;
    memcpy(want + 2, in + 1, 254);
    cobs_vector(in, 255, want, 256);
    for (int i = 0; i < 255; i++)                 /* 01..FF -> FF 01..FE 02 FF */
        in[i] = (uint8_t)(i + 1);
    want[0] = 0xFF;
    memcpy(want + 1, in, 254);
    want[255] = 0x02;
    want[256] = 0xFF;
    cobs_vector(in, 255, want, 257);
    for (int i = 0; i < 254; i++)                 /* 02..FF 00 -> FF 02..FF 01 01 */
        in[i] = (uint8_t)(i + 2);
    in[254] = 0;
    want[0] = 0xFF;
    memcpy(want + 1, in, 254);
    want[255] = 0x01;
    want[256] = 0x01;
    cobs_vector(in, 255, want, 257);
}

static void test_cobs_rejects_bad(void)
{
    uint8_t dec[16];
    CHECK_EQ(cobs_decode((const uint8_t[]){0x05, 0x11, 0x22}, 3, dec, sizeof dec), -1); /* runs past end */
    CHECK_EQ(cobs_decode((const uint8_t[]){0x03, 0x11, 0x00}, 3, dec, sizeof dec), -1); /* zero inside */
    CHECK_EQ(cobs_decode((const uint8_t[]){0x00}, 1, dec, sizeof dec), -1);             /* zero code */
    CHECK_EQ(cobs_decode((const uint8_t[]){0x05, 1, 2, 3, 4}, 5, dec, 3), -1);          /* over capacity */
}

static void test_frame_golden_hello(void)
{
    /* hw/PROTOCOL.md example: HELLO v1, seq 0, port 0xFF; CRC over 01 00 FF 01 is 0xE1AA. */
    uint8_t out[FRAME_MAX_ENCODED];
    const uint8_t want[] = {0x02, 0x01, 0x05, 0xFF, 0x01, 0xE1, 0xAA, 0x00};
    int n = frame_encode(0x01, 0, 0xFF, (const uint8_t[]){1}, 1, out);
    CHECK_EQ(n, sizeof want);
    CHECK(memcmp(out, want, sizeof want) == 0);
}

static int feed(frame_rx_t *rx, const uint8_t *b, int n, frame_t *f)
{
    int got = 0;
    for (int i = 0; i < n; i++)
        got += frame_rx_byte(rx, b[i], f);
    return got;
}

static void test_frame_round_trip(void)
{
    frame_rx_t rx;
    frame_t f;
    uint8_t out[FRAME_MAX_ENCODED], payload[FRAME_MAX_PAYLOAD];
    frame_rx_init(&rx);
    for (int len = 0; len <= FRAME_MAX_PAYLOAD; len += 29) {
        for (int i = 0; i < len; i++)
            payload[i] = (uint8_t)(i * 7 + len);           /* includes zeros */
        int n = frame_encode(0x30, (uint8_t)len, 3, payload, (uint16_t)len, out);
        CHECK(n > 0 && n <= FRAME_MAX_ENCODED);
        CHECK(memchr(out, 0, (size_t)n - 1) == NULL);        /* only the delimiter is 0 */
        CHECK_EQ(feed(&rx, out, n, &f), 1);
        CHECK_EQ(f.type, 0x30);
        CHECK_EQ(f.port, 3);
        CHECK_EQ(f.len, len);
        CHECK(memcmp(f.payload, payload, (size_t)len) == 0);
    }
    int n = frame_encode(0x30, 0, 0, payload, FRAME_MAX_PAYLOAD, out);  /* the largest frame */
    CHECK_EQ(feed(&rx, out, n, &f), 1);
    CHECK_EQ(f.len, FRAME_MAX_PAYLOAD);
    CHECK_EQ(frame_encode(0x30, 0, 0, payload, FRAME_MAX_PAYLOAD + 1, out), 0);
    CHECK_EQ(rx.stats.crc_errors + rx.stats.framing_errors, 0);
}

static void test_bad_frames_counted_and_dropped(void)
{
    frame_rx_t rx;
    frame_t f;
    uint8_t out[FRAME_MAX_ENCODED * 2];
    frame_rx_init(&rx);
    int n = frame_encode(0x04, 0, 0xFF, (const uint8_t[]){1, 2, 3, 4}, 4, out);

    out[4] ^= 0x40;                                   /* a payload bit: CRC error */
    CHECK_EQ(feed(&rx, out, n, &f), 0);
    CHECK_EQ(rx.stats.crc_errors, 1);
    out[4] ^= 0x40;

    const uint8_t bad_cobs[] = {0x07, 0x04, 0x00};     /* code runs past the delimiter */
    CHECK_EQ(feed(&rx, bad_cobs, 3, &f), 0);
    CHECK_EQ(rx.stats.framing_errors, 1);

    const uint8_t short_frame[] = {0x02, 0x01, 0x03, 0xFF, 0x01, 0x00};  /* 01 00 FF 01: 4 bytes */
    CHECK_EQ(feed(&rx, short_frame, 6, &f), 0);
    CHECK_EQ(rx.stats.framing_errors, 2);

    uint8_t big[400];                                 /* 326 decoded bytes: one too many */
    uint8_t raw[326];
    memset(raw, 0x11, sizeof raw);
    uint16_t c = crc16(raw, 324);
    raw[324] = (uint8_t)(c >> 8);
    raw[325] = (uint8_t)c;
    size_t bn = cobs_encode(raw, sizeof raw, big);
    big[bn++] = 0;
    CHECK_EQ(feed(&rx, big, (int)bn, &f), 0);
    CHECK_EQ(rx.stats.framing_errors, 3);
    uint8_t endless[1000];                            /* no delimiter for 1000 bytes */
    memset(endless, 0x55, sizeof endless);
    CHECK_EQ(feed(&rx, endless, sizeof endless, &f), 0);
    CHECK_EQ(frame_rx_byte(&rx, 0, &f), false);
    CHECK_EQ(rx.stats.framing_errors, 4);

    /* Idle fill (0x00 0x00) is neither a frame nor an error. */
    CHECK_EQ(feed(&rx, (const uint8_t[]){0, 0, 0}, 3, &f), 0);
    CHECK_EQ(rx.stats.framing_errors, 4);

    /* Garbage glued in front of a good frame: resync on the next 0x00 only. */
    CHECK_EQ(feed(&rx, (const uint8_t[]){0x12, 0x34, 0x00}, 3, &f), 0);
    CHECK_EQ(feed(&rx, out, n, &f), 1);
    CHECK_EQ(f.type, 0x04);
    CHECK_EQ(rx.stats.frames, 1);
    CHECK_EQ(rx.stats.crc_errors + rx.stats.framing_errors, 6);
}

static void test_seq_gaps(void)
{
    frame_rx_t rx;
    frame_t f;
    uint8_t out[FRAME_MAX_ENCODED];
    frame_rx_init(&rx);
    const uint8_t seqs[] = {250, 251, 254, 255, 0, 3};   /* gaps: 2 + 2, across the wrap */
    for (size_t i = 0; i < sizeof seqs; i++) {
        int n = frame_encode(0x11, seqs[i], 0, NULL, 0, out);
        CHECK_EQ(feed(&rx, out, n, &f), 1);              /* processed despite the gap */
    }
    CHECK_EQ(rx.stats.seq_gaps, 4);
    int n = frame_encode(0x01, 0, 0xFF, (const uint8_t[]){1}, 1, out); /* HELLO restarts the count */
    CHECK_EQ(feed(&rx, out, n, &f), 1);
    n = frame_encode(0x04, 1, 0xFF, (const uint8_t[]){0, 0, 0, 0}, 4, out);
    CHECK_EQ(feed(&rx, out, n, &f), 1);
    CHECK_EQ(rx.stats.seq_gaps, 4);
}

void suite_framing(void)
{
    RUN(test_crc_check_value);
    RUN(test_cobs_golden);
    RUN(test_cobs_rejects_bad);
    RUN(test_frame_golden_hello);
    RUN(test_frame_round_trip);
    RUN(test_bad_frames_counted_and_dropped);
    RUN(test_seq_gaps);
}
