/* frame.c - frame encoder and resynchronising receiver (hw/PROTOCOL.md "Framing"). */
#include "frame.h"
#include "crc16.h"
#include <string.h>

void frame_rx_init(frame_rx_t *rx)
{
    memset(rx, 0, sizeof *rx);
}

void frame_rx_reset_seq(frame_rx_t *rx)
{
    rx->have_seq = false;
}

static bool frame_rx_finish(frame_rx_t *rx, frame_t *out)
{
    uint8_t dec[FRAME_MAX_DECODED];
    long n = cobs_decode(rx->buf, rx->n, dec, sizeof dec);
    if (n < 0 || n < FRAME_MIN_DECODED) {
        rx->stats.framing_errors++;
        return false;
    }
    uint16_t want = (uint16_t)((dec[n - 2] << 8) | dec[n - 1]);
    if (crc16(dec, (size_t)n - 2) != want) {
        rx->stats.crc_errors++;
        return false;
    }
    out->type = dec[0];
    out->seq = dec[1];
    out->port = dec[2];
    out->len = (uint16_t)(n - FRAME_MIN_DECODED);
    memcpy(out->payload, dec + FRAME_HEADER, out->len);
    /* A HELLO starts a new count: the host may have restarted (seq 0 again). */
    if (rx->have_seq && out->type != FRAME_TYPE_HELLO && out->seq != rx->next_seq)
        rx->stats.seq_gaps += (uint8_t)(out->seq - rx->next_seq);
    rx->have_seq = true;
    rx->next_seq = (uint8_t)(out->seq + 1);
    rx->stats.frames++;
    return true;
}

bool frame_rx_byte(frame_rx_t *rx, uint8_t byte, frame_t *out)
{
    if (byte != 0) {
        if (rx->n < sizeof rx->buf)
            rx->buf[rx->n++] = byte;
        else
            rx->overflow = true;
        return false;
    }
    bool got = false;
    if (rx->overflow)
        rx->stats.framing_errors++;       /* over 325 decoded bytes */
    else if (rx->n > 0)                   /* 0x00 0x00: idle fill, ignored */
        got = frame_rx_finish(rx, out);
    rx->n = 0;
    rx->overflow = false;
    return got;
}

int frame_encode(uint8_t type, uint8_t seq, uint8_t port,
                 const uint8_t *payload, uint16_t len, uint8_t *out)
{
    uint8_t raw[FRAME_MAX_DECODED];
    if (len > FRAME_MAX_PAYLOAD)
        return 0;
    raw[0] = type;
    raw[1] = seq;
    raw[2] = port;
    if (len)
        memcpy(raw + FRAME_HEADER, payload, len);
    uint16_t crc = crc16(raw, FRAME_HEADER + (size_t)len);
    raw[FRAME_HEADER + len] = (uint8_t)(crc >> 8);
    raw[FRAME_HEADER + len + 1] = (uint8_t)crc;
    size_t n = cobs_encode(raw, FRAME_MAX_DECODED - FRAME_MAX_PAYLOAD + len, out);
    out[n++] = 0;
    return (int)n;
}
