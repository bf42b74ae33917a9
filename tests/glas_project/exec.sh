#!/usr/bin/env bash

port=$1

PYTHONPATH=./src python3 -m run -p "$port" -vl
