#!/bin/bash
# ibv_ud_pingpong between two processes on rxe0, with received-buffer validation (-c).
. "${VBUS_TOP:?}/tests/lib/pingpong.sh"
pt_need_device
pp_run ibv_ud_pingpong 500 -c -s 1024
