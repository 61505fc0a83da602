/* linesim.h - the simulated phone (FXS port) and carrier line (FXO port)
 * around the virtual board: what they send into the codec, and what they
 * make of what the board plays. */
#ifndef PLATEAU_LINESIM_H
#define PLATEAU_LINESIM_H
#include <stdbool.h>
#include <stdint.h>
#include "hal.h"

/** Print one report line on stdout (printf format, newline added). */
void linesim_report(const char *fmt, ...);
void linesim_init(void);
/** Build the next 20 ms the port's codec captures (phone voice, far-end
 *  DTMF, exchange caller ID) into ulaw. */
void linesim_capture(uint8_t port, uint32_t now, uint8_t ulaw[HAL_FRAME_SAMPLES]);
/** The board played 20 ms to the port: detect DTMF, caller ID, tones. */
void linesim_played(uint8_t port, const uint8_t ulaw[HAL_FRAME_SAMPLES]);
/** Timed actions (end of a flash). */
void linesim_tick(uint32_t now);
/** Execute one control line; false (after reporting "error ...") if bad. */
bool linesim_command(const char *line, uint32_t now);
/** True once "quit" was given. */
bool linesim_quit(void);

#endif
