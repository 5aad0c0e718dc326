"""COIN-M (inverse, coin-margined) futures: wire events, REST rows and the one parse module."""
