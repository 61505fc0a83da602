"""Hardware channel drivers: the line board (FXS/FXO) over a serial link, and their twins in sim/."""
