/* frame.h - Plateau line-board frames: COBS + CRC-16 (hw/PROTOCOL.md "Framing"). */
#ifndef PLATEAU_FRAME_H
#define PLATEAU_FRAME_H
#include <stdbool.h>
#include <stdint.h>
#include "cobs.h"

#define FRAME_HEADER 3
#define FRAME_MAX_PAYLOAD 320
#define FRAME_MIN_DECODED (FRAME_HEADER + 2)
#define FRAME_MAX_DECODED (FRAME_HEADER + FRAME_MAX_PAYLOAD + 2)          /* 325 */
#define FRAME_MAX_ENCODED (COBS_MAX_ENCODED(FRAME_MAX_DECODED) + 1)       /* + 0x00 */
#define FRAME_PORT_BOARD 0xFF
#define FRAME_TYPE_HELLO 0x01

/** One decoded, CRC-checked frame. */
typedef struct {
    uint8_t type;
    uint8_t seq;
    uint8_t port;
    uint16_t len;
    uint8_t payload[FRAME_MAX_PAYLOAD];
} frame_t;

/** Receive-side counters (PROTOCOL.md: counted and dropped, never answered). */
typedef struct {
    uint32_t frames;          /* good frames */
    uint32_t crc_errors;
    uint32_t framing_errors;  /* bad COBS, too short, too long */
    uint32_t seq_gaps;        /* frames missing in the peer's seq */
} frame_stats_t;

/** Byte-at-a-time receiver: resynchronises on every 0x00. */
typedef struct {
    uint8_t buf[FRAME_MAX_ENCODED];
    uint16_t n;
    bool overflow;            /* current frame too long: skip to next 0x00 */
    bool have_seq;
    uint8_t next_seq;
    frame_stats_t stats;
} frame_rx_t;

void frame_rx_init(frame_rx_t *rx);
/** Feed one byte; returns true when out holds a new good frame. */
bool frame_rx_byte(frame_rx_t *rx, uint8_t byte, frame_t *out);
/** Forget the peer's seq (the next frame starts a new count; used on HELLO). */
void frame_rx_reset_seq(frame_rx_t *rx);

/** Encode a frame (COBS + trailing 0x00) into out (FRAME_MAX_ENCODED bytes);
 *  returns the byte count, or 0 if len exceeds FRAME_MAX_PAYLOAD. */
int frame_encode(uint8_t type, uint8_t seq, uint8_t port,
                 const uint8_t *payload, uint16_t len, uint8_t *out);

#endif
