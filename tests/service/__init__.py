"""Tests of the systemd units, sysusers/tmpfiles files and `make install`."""
