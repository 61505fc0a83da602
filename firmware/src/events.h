/* events.h - the board's event queue: state machines post, the main loop sends. */
#ifndef PLATEAU_EVENTS_H
#define PLATEAU_EVENTS_H
#include <stdbool.h>
#include <stdint.h>

/* Frame types (hw/PROTOCOL.md "Frame types"). */
enum frame_type {
    FT_HELLO = 0x01, FT_CAPS = 0x02, FT_ACK = 0x03, FT_PING = 0x04, FT_PONG = 0x05, FT_STATUS = 0x06,
    FT_RING = 0x10, FT_STOP_RING = 0x11, FT_OFFHOOK = 0x12, FT_ONHOOK = 0x13, FT_DIAL = 0x14,
    FT_SET_GAIN = 0x15, FT_TONE = 0x16,
    FT_EV_OFF_HOOK = 0x20, FT_EV_ON_HOOK = 0x21, FT_EV_FLASH = 0x22, FT_EV_RING_START = 0x23,
    FT_EV_RING_STOP = 0x24, FT_EV_CALLER_ID = 0x25, FT_EV_POLARITY = 0x26, FT_EV_DTMF = 0x27,
    FT_EV_BUSY_TONE = 0x28,
    FT_AUDIO = 0x30, FT_DCHAN = 0x31
};

#define EVENT_MAX_DATA 80        /* CALLER_ID: 1 + 20 + 1 + 50 */
#define EVENT_QUEUE_LEN 32

/** An event frame waiting to be sent: a frame type, its port and payload. */
typedef struct {
    uint8_t type;
    uint8_t port;
    uint8_t len;
    uint8_t data[EVENT_MAX_DATA];
} event_t;

typedef struct {
    event_t items[EVENT_QUEUE_LEN];
    uint8_t head, count;
    uint32_t dropped;
} evq_t;

void evq_init(evq_t *q);
/** Post an event; false (and counted in dropped) if the queue is full. */
bool evq_post(evq_t *q, uint8_t type, uint8_t port, const uint8_t *data, uint8_t len);
/** Take the oldest event; false if the queue is empty. */
bool evq_take(evq_t *q, event_t *out);

#endif
