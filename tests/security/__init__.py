"""One test per attack of the threat model (README, "Threat model"), each against real parts."""
