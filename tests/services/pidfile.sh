# Sourced by the service scripts (swift.sh, bind.sh, openstack.sh): is the process a pid file names
# still the one the file was written for?
#
# `kill -0 $(cat FILE)` alone is not enough. A pid file outlives its process, and its number comes
# back: the kernel hands pids out again once they wrap (pid_max is 32768 on the test machines), and a
# machine booted from a disk snapshot (as CI's is) starts numbering afresh while the files of the
# snapshot's services are still there. A stranger holding the number would pass for the service, and
# the script would skip starting it and then wait in vain for its port.
#
# So the process must also be older than the file: the file is written once the process exists (by
# `echo $! > FILE` just after the fork, or by the daemon itself), and a stranger that took the number
# over started after that. Two seconds of slack: /proc/stat's btime is whole seconds.

# The epoch second at which process PID started (fails when there is no such process).
process_started_at() { # pid
  local stat rest btime hz
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  rest=${stat##*) }          # the fields after "(comm)", which may itself hold spaces or parentheses
  read -ra fields <<< "$rest"  # fields[0] is field 3 (state); starttime is field 22
  btime=$(awk '$1 == "btime" { print $2 }' /proc/stat)
  hz=$(getconf CLK_TCK)
  echo $(( btime + fields[19] / hz ))
}

# True when FILE names a live process that started no later than FILE was written.
pid_alive() { # pid-file
  local pid started written
  [ -f "$1" ] || return 1
  pid=$(cat "$1" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  started=$(process_started_at "$pid") || return 1
  written=$(stat -c %Y "$1") || return 1
  [ "$started" -le $(( written + 2 )) ]
}
