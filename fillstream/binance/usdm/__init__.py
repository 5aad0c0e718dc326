"""USDⓈ-M futures (``/fapi``, ``fstream``): wire events, REST rows and the one parse module."""
