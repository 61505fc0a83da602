/* host_hal.h - hal.h on a Linux host: the host link is a pty, the lines are
 * simulated by linesim.c, time is CLOCK_MONOTONIC. */
#ifndef PLATEAU_HOST_HAL_H
#define PLATEAU_HOST_HAL_H
#include <stdbool.h>
#include <stdint.h>
#include "hal.h"

#define VB_PORTS 2
#define VB_TXBUF 65536

typedef struct {
    int pty_fd;                          /* master side; -1 if none */
    uint8_t tx[VB_TXBUF];
    int tx_len;
    uint64_t t0_ms;
    uint8_t kinds[VB_PORTS];
    /* line side, set by the simulated phone/line */
    bool slic_offhook[VB_PORTS], daa_ring[VB_PORTS], daa_pol[VB_PORTS];
    bool line_forced[VB_PORTS];          /* "line P VALUE" overrides the model */
    int16_t line_value[VB_PORTS];
    uint8_t alarms[VB_PORTS];
    /* what the firmware drives */
    bool slic_ring[VB_PORTS], daa_relay[VB_PORTS];
    /* codec: one captured frame waiting per port */
    bool codec_ready[VB_PORTS];
    uint8_t codec_in[VB_PORTS][HAL_FRAME_SAMPLES];
    uint32_t watchdog_kicks;
} vb_hal_t;

extern vb_hal_t vb;

/** Monotonic ms since vb_hal_init. */
void vb_hal_init(int pty_fd);
/** Write queued frames to the pty as far as it takes them. */
void vb_hal_flush(void);

#endif
