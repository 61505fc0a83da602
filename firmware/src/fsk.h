/* fsk.h - on-hook caller-ID data: FSK modem and MDMF messages.
 * ETSI EN 300 659-1/-3 (V.23: mark 1300 Hz, space 2100 Hz) and Telcordia
 * GR-30 (Bell 202: mark 1200 Hz, space 2200 Hz), both 1200 baud, async
 * 8N1 LSB first, after 300 bits of channel seizure and 180 mark bits. */
#ifndef PLATEAU_FSK_H
#define PLATEAU_FSK_H
#include <stdbool.h>
#include <stdint.h>

enum fsk_std { FSK_V23 = 0, FSK_BELL202 = 1 };

#define CID_MAX_NUMBER 20            /* EN 300 659-3 5.4.1: 20 digits */
#define CID_MAX_NAME 50              /* EN 300 659-3 5.4.5: 50 characters */
#define CID_MSG_MAX (2 + 2 + CID_MAX_NUMBER + 2 + CID_MAX_NAME + 1)
#define MDMF_CALL_SETUP 0x80
#define MDMF_PARAM_NUMBER 0x02
#define MDMF_PARAM_NAME 0x07
#define FSK_SEIZURE_BITS 300
#define FSK_MARK_BITS 180

/** A caller-ID record (numbers ASCII, name UTF-8 bytes, NUL-terminated). */
typedef struct {
    char number[CID_MAX_NUMBER + 1];
    char name[CID_MAX_NAME + 1];
} cid_t;

/** Build an MDMF Call Setup message (type, length, parameters, checksum);
 *  number/name are truncated to the standard limits; returns its length. */
int cid_build_mdmf(const char *number, int nlen, const char *name, int namelen, uint8_t *out);
/** Parse an MDMF message of n bytes; false on bad checksum, type or length. */
bool cid_parse_mdmf(const uint8_t *msg, int n, cid_t *cid);

/** Phase-continuous FSK modulator over seizure + mark + message bytes. */
typedef struct {
    uint8_t msg[CID_MSG_MAX];
    int len;
    uint32_t bit_count;      /* total bits to send */
    uint32_t sample;         /* next sample index */
    float phase;
    float mark_hz, space_hz, amplitude;
} fsk_mod_t;

void fsk_mod_start(fsk_mod_t *m, enum fsk_std std, const uint8_t *msg, int len, float dbm0);
bool fsk_mod_busy(const fsk_mod_t *m);
/** Fill n samples; silence once the message is sent. */
void fsk_mod_fill(fsk_mod_t *m, int16_t *out, int n);
/** Duration of the whole transmission in ms. */
uint32_t fsk_mod_duration_ms(const fsk_mod_t *m);

/* Streaming demodulator: a one-bit sliding correlator per tone and a UART. */
#define FSK_WIN 10
#define FSK_WIN_V23 10
#define FSK_WIN_BELL 7
typedef struct {
    float win[FSK_WIN];
    int win_len;
    float disc[3];
    int pos, filled;
    float cm[FSK_WIN], sm[FSK_WIN], cs[FSK_WIN], ss[FSK_WIN];
    int mark_run;            /* consecutive mark decisions (carrier idle) */
    int in_byte;             /* 0 idle, else samples since start edge + 1 */
    int bit;                 /* next bit to sample, 0 = start bit */
    uint8_t value;
    uint8_t msg[CID_MSG_MAX];/* message assembly */
    int msg_len;
} fsk_demod_t;

void fsk_demod_init(fsk_demod_t *d, enum fsk_std std);
/** Feed n samples; writes decoded bytes to out (up to max); returns count. */
int fsk_demod_process(fsk_demod_t *d, const int16_t *x, int n, uint8_t *out, int max);
/** Feed n samples and assemble an MDMF message; true when cid was filled. */
bool fsk_demod_cid(fsk_demod_t *d, const int16_t *x, int n, cid_t *cid);

#endif
