#!/bin/sh
# Lets the e2e test run against the development stand-in (see devserver.mjs).
exec node "$(dirname "$0")/devserver.mjs" "$@"
