/* fxo.h - FXO port (DAA, a carrier line plugged in): ring detect, caller-ID
 * receive, polarity, seizure, DTMF dialling and busy-tone detection. */
#ifndef PLATEAU_FXO_H
#define PLATEAU_FXO_H
#include <stdbool.h>
#include <stdint.h>
#include "busytone.h"
#include "debounce.h"
#include "dtmf.h"
#include "events.h"
#include "fsk.h"
#include "fxs.h"                 /* enum cmd_status */

#define FXO_RING_DEBOUNCE_MS 30
#define FXO_POLARITY_DEBOUNCE_MS 30
#define FXO_RING_STOP_MS 6000     /* no ring for 6 s after the last burst */
#define FXO_CLIP_TIMEOUT_MS 1000  /* a DTMF CLIP without its 'C' ends after 1 s */
#define FXO_CID_HOLD_MS 2000      /* one FSK message decoded twice gives one event */

enum fxo_state { FXO_IDLE = 0, FXO_RINGING = 1, FXO_OFFHOOK = 2 };   /* = STATUS codes */

typedef struct {
    uint8_t port;
    uint8_t state;
    debounce_t ring;              /* stable == true: ring voltage present */
    debounce_t polarity;          /* stable == true: reversed */
    uint32_t last_ring_end;
    /* caller ID receive */
    fsk_demod_t v23, bell;
    bool fsk_cid_seen;
    uint32_t fsk_cid_at;
    bool clip_active;
    char clip[CID_MAX_NUMBER + 1];
    int clip_len;
    uint32_t clip_last;
    /* dialling */
    dtmf_gen_t dial;
    /* far end gone: busy/congestion cadence while seized, one BUSY_TONE per seizure */
    busytone_t busy;
} fxo_t;

void fxo_init(fxo_t *f, uint8_t port, uint32_t now);
/** Sample ring detect and polarity and run timers; posts RING_START,
 *  RING_STOP, POLARITY and (DTMF CLIP timeout) CALLER_ID. */
void fxo_poll(fxo_t *f, uint32_t now, evq_t *q);
/** OFFHOOK command: seize the line (re-arms busy-tone detection). */
enum cmd_status fxo_offhook(fxo_t *f);
/** ONHOOK command: release (posts ON_HOOK if it was seized). */
enum cmd_status fxo_onhook(fxo_t *f, evq_t *q);
/** DIAL command: queue DTMF digits (100 ms on / 100 ms off). */
enum cmd_status fxo_dial(fxo_t *f, const char *digits, int len);
/** Line audio received (n samples): caller-ID receive while idle/ringing;
 *  while seized, busy-tone detection (posts BUSY_TONE once per seizure). */
void fxo_audio_in(fxo_t *f, uint32_t now, const int16_t *x, int n, const dtmf_hit_t *hits,
                  int nhits, evq_t *q);
/** Audio to the line: true (out written) while dialling. */
bool fxo_audio_out(fxo_t *f, int16_t *out, int n);
/** Post a CALLER_ID event for a number and name. */
void post_caller_id(evq_t *q, uint8_t port, const char *number, const char *name);

#endif
