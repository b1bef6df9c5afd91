"""The live-capture edge: frames from an interface, as they happen, for the engine.

  capture.py  an AF_PACKET socket with a kernel BPF filter, handing out RawFrames

Nothing is imported here: the socket, ctypes and libpcap load only when capture.py is imported.
"""
