/* mock_hal.h - hal.h implemented over plain variables, plus a simulated host
 * and line around a board_t, for the unit tests. */
#ifndef PLATEAU_MOCK_HAL_H
#define PLATEAU_MOCK_HAL_H
#include <stdbool.h>
#include <stdint.h>
#include "board.h"
#include "frame.h"
#include "hal.h"

#define MOCK_PORTS 4
#define MOCK_CAPTURE (8000 * 30)          /* 30 s of codec output per port */

/** Source of the audio a port's codec captures: fills 160 samples. */
typedef void (*mock_source_fn)(uint8_t port, uint32_t now, int16_t *pcm);

typedef struct {
    uint32_t now;
    uint8_t n_ports, kinds[MOCK_PORTS];
    bool slic_offhook[MOCK_PORTS], slic_ring[MOCK_PORTS], slic_pol[MOCK_PORTS];
    int ring_changes[MOCK_PORTS];
    bool daa_ring[MOCK_PORTS], daa_pol[MOCK_PORTS], daa_relay[MOCK_PORTS];
    int16_t line_value[MOCK_PORTS];
    uint8_t alarms[MOCK_PORTS];
    uint8_t serial_in[8192];
    int in_len, in_pos;
    uint8_t serial_out[1 << 20];
    int out_len, out_pos;
    bool serial_refuse;                  /* hal_serial_write returns false */
    bool codec_ready[MOCK_PORTS];
    uint8_t codec_in[MOCK_PORTS][HAL_FRAME_SAMPLES];
    int16_t capture[MOCK_PORTS][MOCK_CAPTURE];   /* what the board played */
    int captured[MOCK_PORTS];
    mock_source_fn source[MOCK_PORTS];
    int kicks;
    frame_rx_t host_rx;                  /* the host's receiver */
    uint8_t host_seq;
} mock_hal_t;

extern mock_hal_t mock;

/** Reset everything: n ports of the given kinds, time 0, empty buffers. */
void mock_reset(uint8_t n, const uint8_t *kinds);
/** Advance time by ms, 1 ms per board_poll (b may be NULL: time only);
 *  a codec frame per port every 20 ms. */
void mock_run(board_t *b, uint32_t ms);
/** The host sends a frame (next host seq). */
void mock_host_send(uint8_t type, uint8_t port, const uint8_t *payload, uint16_t len);
/** Raw bytes from the host (for bad frames). */
void mock_host_raw(const uint8_t *bytes, int n);
/** Next frame the board sent (any type); false if none left. */
bool mock_host_recv(frame_t *f);
/** Next frame of a type, skipping others (STATUS, AUDIO...). */
bool mock_host_expect(uint8_t type, frame_t *f);
/** Drop everything the board sent so far. */
void mock_host_flush(void);

#endif
