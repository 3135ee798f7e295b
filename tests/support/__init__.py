"""What the test suites share, in one place.

- `tests.support.worker`: the pixels and tokens the emulator knows, the one worker
  configuration writer, `capi-worker run` as a subprocess, `wait_until`, sample events.
- `tests.support.rig`: `WorkerRig`, the topics, configuration and worker processes of one test.
- `tests.support.builders`: events and destination settings for the pure (unit) tests.
- `tests.support.http`: `local_get`, a GET to a port of this machine (health, metrics).
- `tests.support.avro`, `tests.support.dead_letters`: Avro records and dead-letter headers as
  producers and the worker write them.
- `tests.support.package`: the project's sources copied out, to build a wheel from.

Fixtures (the session's broker, unique topics, the Graph API emulator) are in tests/conftest.py.
"""
