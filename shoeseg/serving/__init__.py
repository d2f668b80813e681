"""Running TorchServe around the worker: build the .mar, start / wait for / stop a server, the readiness probe.
Not packed into the .mar: a worker never imports it."""
