/* board.h - the line board: ports, host link and main loop. */
#ifndef PLATEAU_BOARD_H
#define PLATEAU_BOARD_H
#include <stdbool.h>
#include <stdint.h>
#include "dtmf.h"
#include "events.h"
#include "frame.h"
#include "fxo.h"
#include "fxs.h"
#include "hal.h"
#include "tonegen.h"
#include "watchdog.h"

#define BOARD_MAX_PORTS 16
#define FW_MAJOR 1
#define FW_MINOR 0
#define PROTOCOL_VERSION 1
#define STATUS_PERIOD_MS 1000
#define JB_FRAMES 4               /* host audio queued per port: 80 ms */
#define WDT_PERIOD_MS 100

/** One line port: its state machine plus the audio path around it. */
typedef struct {
    uint8_t kind;                 /* HAL_PORT_FXS or HAL_PORT_FXO */
    union {
        fxs_t fxs;
        fxo_t fxo;
    } line;
    dtmf_det_t det;
    tonegen_t tone;               /* TONE command (FXS) */
    float tx_gain, rx_gain;       /* SET_GAIN, linear */
    uint8_t jb[JB_FRAMES][HAL_FRAME_SAMPLES];
    uint8_t jb_head, jb_count;
    uint32_t audio_overruns;
} port_t;

typedef struct board {
    uint8_t n_ports;
    port_t ports[BOARD_MAX_PORTS];
    frame_rx_t rx;
    uint8_t tx_seq;
    uint32_t tx_drops;            /* frames the HAL could not take */
    evq_t events;
    wdt_t wdt;
    uint32_t last_status;
    uint8_t sent_state[BOARD_MAX_PORTS], sent_alarms[BOARD_MAX_PORTS];
} board_t;

/** Initialise from the HAL's port list (lines idle, relays open). */
void board_init(board_t *b);
/** One pass of the main loop: link, ports, audio, events, STATUS, watchdog. */
void board_poll(board_t *b);
/** Encode and send one frame with the next seq. */
void board_send(board_t *b, uint8_t type, uint8_t port, const uint8_t *payload, uint16_t len);
/** STATUS code of a port (0 idle, 1 off-hook/seized, 2 ringing; FXO 1 ringing). */
uint8_t board_port_state(const board_t *b, uint8_t port);
/** True when the port carries call audio (off-hook FXS, seized FXO). */
bool board_port_active(const board_t *b, uint8_t port);

#endif
