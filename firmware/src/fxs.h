/* fxs.h - FXS port (SLIC, an analog phone plugged in): hook and ringing state machine. */
#ifndef PLATEAU_FXS_H
#define PLATEAU_FXS_H
#include <stdbool.h>
#include <stdint.h>
#include "debounce.h"
#include "dtmf.h"
#include "events.h"
#include "fsk.h"

#define FXS_DEBOUNCE_MS 30
#define FXS_FLASH_MIN_MS 80
#define FXS_FLASH_MAX_MS 800      /* on-hook longer than this is a hang-up */
#define FXS_RING_TIMEOUT_MS 120000u
#define FXS_CID_DELAY_MS 500      /* FSK starts 500 ms into the first long silence */
#define FXS_CLIP_GAP_MS 500       /* DTMF CLIP ends this long before the first ring */

/** Port states; values are the STATUS codes where they coincide. */
enum fxs_state {
    FXS_IDLE = 0,         /* on-hook, quiet */
    FXS_OFFHOOK = 1,      /* phone lifted */
    FXS_RINGING = 2,      /* cadence running (or DTMF CLIP before it) */
    FXS_HOOK_PENDING = 3  /* on-hook after off-hook: flash or hang-up? */
};

enum ring_cadence { CADENCE_FR = 0, CADENCE_UK = 1, CADENCE_US = 2, CADENCE_COUNT };
enum cid_mode { CID_NONE = 0, CID_FSK_V23 = 1, CID_FSK_BELL = 2, CID_DTMF = 3, CID_MODE_COUNT };

/** Command result, the ACK status codes of hw/PROTOCOL.md. */
enum cmd_status { CMD_OK = 0, CMD_BAD_PORT = 1, CMD_BAD_STATE = 2, CMD_BAD_ARG = 3, CMD_UNSUPPORTED = 4 };

typedef struct {
    uint8_t port;
    uint8_t state;
    debounce_t hook;              /* stable == true: off-hook */
    uint32_t onhook_at;           /* start of the pending on-hook */
    /* ringing */
    uint8_t cadence;
    uint8_t seg;                  /* segment of the cadence; even = ring on */
    bool ring_on;                 /* what the SLIC is told */
    bool cadence_started;
    uint32_t seg_start, ring_start;
    /* caller ID */
    uint8_t cid_mode;
    bool cid_sent;
    bool fsk_active;
    uint32_t fsk_at;              /* when the FSK transmission starts */
    cid_t cid;
    fsk_mod_t fsk;
    dtmf_gen_t clip;
} fxs_t;

void fxs_init(fxs_t *f, uint8_t port, uint32_t now);
/** Sample the hook and run the timers; posts OFF_HOOK / ON_HOOK / FLASH. */
void fxs_poll(fxs_t *f, uint32_t now, evq_t *q);
/** RING command: start the cadence, with caller ID. Returns an ACK status. */
enum cmd_status fxs_ring(fxs_t *f, uint32_t now, uint8_t cadence, uint8_t cid_mode,
                         const char *number, int nlen, const char *name, int namelen);
/** STOP_RING command. */
enum cmd_status fxs_stop_ring(fxs_t *f);
/** STATUS state code: 0 idle, 1 off-hook, 2 ringing. */
uint8_t fxs_status(const fxs_t *f);
/** If the port has caller-ID signal to send now, write n samples and
 *  return true; otherwise leave out alone and return false. */
bool fxs_audio(fxs_t *f, uint32_t now, int16_t *out, int n);

#endif
