/*
 * hal.h - everything a chip port of the Plateau line-board firmware implements.
 *
 * The board logic in src/ is plain C99 and talks to the hardware only through
 * these functions (TinyUSB dcd.h style: one header, no weak symbols).  A port
 * is a single .c file implementing every function below; the host unit tests
 * (tests/mock_hal.c) and the virtual board (vboard/host_hal.c) are two such ports.
 *
 * Rules for a port:
 *  - every function is non-blocking and is called only from the main loop;
 *  - interrupt handlers never call into src/: they only fill the port's own
 *    buffers (serial FIFO, codec DMA double-buffer, hook/ring samples) that the
 *    functions below then read (interrupts only post events);
 *  - ports are numbered 0..hal_port_count()-1.
 */
#ifndef PLATEAU_HAL_H
#define PLATEAU_HAL_H

#include <stdbool.h>
#include <stdint.h>

/* Samples per codec frame: 20 ms of 8 kHz G.711 (protocol AUDIO payload). */
#define HAL_FRAME_SAMPLES 160

/* Port kinds, numbered as in the CAPS frame (hw/PROTOCOL.md). */
enum hal_port_kind { HAL_PORT_FXS = 1, HAL_PORT_FXO = 2 };

/* --- board identity ---------------------------------------------------- */
/** Number of line ports on this board (at most 16). */
uint8_t hal_port_count(void);
/** Kind of a port (enum hal_port_kind). */
uint8_t hal_port_kind(uint8_t port);
/** NUL-terminated ASCII serial number, at most 32 characters. */
const char *hal_serial_number(void);

/* --- time ---------------------------------------------------------------- */
/** Milliseconds since boot, monotonic, wrapping at 2^32. */
uint32_t hal_millis(void);

/* --- host link (USB CDC-ACM or UART) ----------------------------------- */
/** Copy up to max received bytes into buf; returns the count (0 if none). */
int hal_serial_read(uint8_t *buf, int max);
/** Queue a whole encoded frame for sending. Returns false, sending nothing,
 *  if it does not fit in the port's transmit buffer (the frame is dropped). */
bool hal_serial_write(const uint8_t *buf, int len);

/* --- FXS (SLIC) ---------------------------------------------------------- */
/** Apply (true) or remove ringing voltage on the port; the SLIC's ring
 *  generator supplies the 25/50 Hz waveform, the firmware the cadence. */
void hal_slic_ring(uint8_t port, bool on);
/** Raw (not debounced) loop-current detector: true when the phone is off-hook. */
bool hal_slic_offhook(uint8_t port);
/** Line polarity the SLIC feeds the phone (false normal, true reversed). */
void hal_slic_polarity(uint8_t port, bool reversed);

/* --- FXO (DAA) ----------------------------------------------------------- */
/** Raw ring detector: true while ringing voltage is present on the line
 *  (the port integrates the 25/50 Hz half-waves, typically over 50 ms). */
bool hal_daa_ring(uint8_t port);
/** Raw line polarity as seen by the DAA: false normal, true reversed. */
bool hal_daa_polarity(uint8_t port);
/** Close (true: off-hook, seize the line) or open the off-hook relay. */
void hal_daa_offhook(uint8_t port, bool closed);

/* --- analog measurements (for STATUS) ------------------------------------ */
/** STATUS `line` value: FXO line voltage in 0.1 V (idle 48 V = 480,
 *  negative when reversed); FXS loop current in 0.1 mA. */
int16_t hal_line_measure(uint8_t port);
/** Alarm bits: bit 0 no line, bit 1 over-current, bit 2 over-temperature. */
uint8_t hal_line_alarms(uint8_t port);

/* --- codec (PCM, 8 kHz, G.711 mu-law) ----------------------------------- */
/** If a new 20 ms frame was captured from the line/phone since the last call,
 *  copy its 160 mu-law bytes to ulaw and return true.  The codec clock paces
 *  the firmware's audio: each true return must be followed by one
 *  hal_codec_write() for the same port. */
bool hal_codec_read(uint8_t port, uint8_t ulaw[HAL_FRAME_SAMPLES]);
/** Play 160 mu-law bytes (20 ms) to the line/phone. */
void hal_codec_write(uint8_t port, const uint8_t ulaw[HAL_FRAME_SAMPLES]);

/* --- watchdog ------------------------------------------------------------ */
/** Restart the hardware watchdog timer. */
void hal_watchdog_kick(void);

#endif
