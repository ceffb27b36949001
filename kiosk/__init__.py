"""The signing kiosk: controlled-access e-signatures for GMP shop floors."""

__version__ = "0.10.0"
