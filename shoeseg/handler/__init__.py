"""TorchServe serving for ShoeSeg: image I/O, the handler, and the server helper (start / wait / stop)."""
