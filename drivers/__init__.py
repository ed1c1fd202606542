"""Device I/O: scale protocols and serial driver, Modbus counters, simulators."""
