"""The pure core: no scapy, no sockets, no clock, no printing. Time arrives with each segment."""
