#!/usr/bin/env bash
# A single-node Slurm cluster with accounting on this machine, for testing `launcher=slurm`.
#
#   scripts/slurm-local.sh up       install the Debian packages if missing, start the daemons
#   scripts/slurm-local.sh down     stop the daemons this script started (by their PID files)
#   scripts/slurm-local.sh status   say what runs; exit 0 only when the cluster takes jobs
#   scripts/slurm-local.sh env      print `export SLURM_CONF=...` for the client commands
#   scripts/slurm-local.sh install  only install the Debian packages if missing
#
# Everything lives under $SLURM_LOCAL_DIR (default /tmp/spadelab-slurm): configs, munge key,
# MariaDB data, Slurm state, logs, PID files. `up` and `down` are idempotent. Needs root (the
# daemons run as root; nothing is installed as a system service and nothing under /etc changes).
#
# Why slurmdbd + MariaDB: submitit (hydra-submitit-launcher) reads job states with `sacct`, and
# without accounting it logs "Bypassing sacct error" on every poll and never sees a job finish.
# sacct only reads the accounting database through slurmdbd, whose one storage backend is
# MySQL/MariaDB (Slurm's text-file accounting storage was removed in 15.08; jobcomp/filetxt is not
# what `sacct -j` reads). So: mariadbd on 127.0.0.1 -> slurmdbd -> slurmctld -> slurmd.
set -euo pipefail

DIR=${SLURM_LOCAL_DIR:-/tmp/spadelab-slurm}
CLUSTER=${SLURM_LOCAL_CLUSTER:-spadelab}
PARTITION=${SLURM_LOCAL_PARTITION:-cpu}
# CPUs the node offers. Slurm trusts this number (config_overrides), so more tasks than cores can
# run at once; default: the real count.
CPUS=${SLURM_LOCAL_CPUS:-$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)} # nproc obeys OMP_*
PORT_BASE=${SLURM_LOCAL_PORT_BASE:-16817} # slurmctld, slurmd, slurmdbd, mariadb: base .. base+3
PACKAGES=(slurm-wlm slurmdbd munge mariadb-server)

CTLD_PORT=$PORT_BASE
SLURMD_PORT=$((PORT_BASE + 1))
DBD_PORT=$((PORT_BASE + 2))
DB_PORT=$((PORT_BASE + 3))
NODE=$(hostname -s)
export SLURM_CONF=$DIR/etc/slurm.conf

log() { echo "slurm-local: $*" >&2; }
die() {
  log "error: $*"
  exit 1
}

install_packages() {
  local missing=()
  for package in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" ||
      missing+=("$package")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" -eq 0 ] || die "packages ${missing[*]} are missing; run as root or apt-get install them"
  log "installing ${missing[*]} (about 2 min)"
  # Packages must not start their system services: the cluster runs from $DIR only.
  local policy=/usr/sbin/policy-rc.d added=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && added=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  local code=0
  {
    apt-get install -y -q -o DPkg::Lock::Timeout=600 --no-install-recommends "${missing[@]}" ||
      { apt-get update -q && apt-get install -y -q -o DPkg::Lock::Timeout=600 \
        --no-install-recommends "${missing[@]}"; }
  } >"${TMPDIR:-/tmp}/slurm-local-apt.log" 2>&1 || code=$?
  [ $added -eq 1 ] && rm -f "$policy"
  [ $code -eq 0 ] || die "apt-get install ${missing[*]} failed; see ${TMPDIR:-/tmp}/slurm-local-apt.log"
}

# pid_of NAME: the PID in NAME's PID file if that process still runs, else nothing.
pid_of() {
  local file=$DIR/run/$1.pid pid
  [ -s "$file" ] || return 1
  pid=$(cat "$file")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
  local seconds=$1 what=$2
  shift 2
  for _ in $(seq $((seconds * 4))); do
    if [ "$(type -t "$1")" = function ]; then
      "$@" >/dev/null 2>&1 && return 0
    else # a client command can hang for minutes on a daemon that is not up yet
      timeout 10 "$@" >/dev/null 2>&1 && return 0
    fi
    sleep 0.25
  done
  die "$what did not come up within ${seconds}s; see $DIR/log/"
}

write_configs() {
  mkdir -p "$DIR"/{etc,run,log,state,spool,munge,mysql}
  chmod 700 "$DIR/munge"
  if [ ! -s "$DIR/munge/munge.key" ]; then
    dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none
    chmod 400 "$DIR/munge/munge.key"
  fi
  local memory
  # Leave 2 GB to the system so the node is not drained for reporting less memory than this.
  memory=$(($(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo) - 2048))
  cat >"$DIR/etc/slurm.conf" <<EOF
# Written by scripts/slurm-local.sh; rewritten on every \`up\`.
ClusterName=$CLUSTER
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$DIR/run/munge.socket
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
# No cgroups in containers: track processes by /proc, bind no CPUs.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SlurmdParameters=config_overrides
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
ReturnToService=2
MpiDefault=none
MailProg=/bin/true
# Jobs leave squeue soon after they end; sacct (slurmdbd) keeps them.
MinJobAge=30
KillWait=10
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$DBD_PORT
# With slurmdbd this names the munge socket for connections to it (AuthInfo does not).
AccountingStoragePass=$DIR/run/munge.socket
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$memory State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
  cat >"$DIR/etc/slurmdbd.conf" <<EOF
# Written by scripts/slurm-local.sh; rewritten on every \`up\`.
AuthType=auth/munge
AuthInfo=socket=$DIR/run/munge.socket
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=root
PidFile=$DIR/run/slurmdbd.pid
LogFile=$DIR/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
EOF
  chmod 600 "$DIR/etc/slurmdbd.conf" # slurmdbd refuses a config others can read
}

start_munge() {
  pid_of munged >/dev/null && return 0
  munged --force --key-file="$DIR/munge/munge.key" --socket="$DIR/run/munge.socket" \
    --pid-file="$DIR/run/munged.pid" --log-file="$DIR/log/munged.log" \
    --seed-file="$DIR/munge/munged.seed"
  wait_for 10 munged munge -n -S "$DIR/run/munge.socket"
}

mariadb_ready() { mariadb --no-defaults -S "$DIR/run/mysqld.sock" -u root -e "SELECT 1"; }

start_mariadb() {
  if ! pid_of mariadbd >/dev/null; then
    if [ ! -d "$DIR/mysql/mysql" ]; then
      mariadb-install-db --no-defaults --datadir="$DIR/mysql" --user=root \
        --auth-root-authentication-method=normal --skip-test-db \
        >"$DIR/log/mariadb-install.log" 2>&1 ||
        die "mariadb-install-db failed; see $DIR/log/mariadb-install.log"
    fi
    # A small server: the accounting tables of a few test sweeps.
    mariadbd --no-defaults --user=root --datadir="$DIR/mysql" --socket="$DIR/run/mysqld.sock" \
      --pid-file="$DIR/run/mariadbd.pid" --bind-address=127.0.0.1 --port="$DB_PORT" \
      --log-error="$DIR/log/mariadb.log" --innodb-buffer-pool-size=64M \
      --innodb-log-file-size=16M --skip-log-bin --performance-schema=off \
      --innodb-lock-wait-timeout=900 >/dev/null 2>&1 &
    disown
    wait_for 60 mariadb mariadb_ready
  fi
  mariadb --no-defaults -S "$DIR/run/mysqld.sock" -u root -e "
    CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';" ||
    die "could not create the slurm database user; see $DIR/log/mariadb.log"
}

start_slurmdbd() {
  pid_of slurmdbd >/dev/null && return 0
  # slurmdbd reads slurmdbd.conf from the directory of $SLURM_CONF.
  slurmdbd >>"$DIR/log/slurmdbd.out" 2>&1 ||
    die "slurmdbd did not start; see $DIR/log/slurmdbd.log"
  wait_for 60 slurmdbd sacctmgr -n list cluster
  # slurmctld only sends job records for a cluster the database knows.
  if [ -z "$(sacctmgr -n -P list cluster "$CLUSTER" format=cluster)" ]; then
    sacctmgr -i add cluster "$CLUSTER" >/dev/null
  fi
}

start_slurmctld() {
  pid_of slurmctld >/dev/null && return 0
  slurmctld >>"$DIR/log/slurmctld.out" 2>&1 || die "slurmctld did not start; see $DIR/log/"
  wait_for 30 slurmctld scontrol ping
}

start_slurmd() {
  pid_of slurmd >/dev/null && return 0
  slurmd -N "$NODE" >>"$DIR/log/slurmd.out" 2>&1 || die "slurmd did not start; see $DIR/log/"
  wait_for 30 "node $NODE" node_idle
}

node_idle() { timeout 10 sinfo -h -N -n "$NODE" -o %T | grep -Eq '^(idle|mixed|allocated)'; }

up() {
  install_packages
  [ "$(id -u)" -eq 0 ] || die "run as root: the daemons run as root under $DIR"
  write_configs
  start_munge
  start_mariadb
  start_slurmdbd
  start_slurmctld
  start_slurmd
  # A node that was down when slurmctld last saved its state comes back drained otherwise.
  scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true
  node_idle || wait_for 30 "node $NODE" node_idle
  log "up: partition $PARTITION, node $NODE with $CPUS CPUs; export SLURM_CONF=$SLURM_CONF"
}

stop() { # stop NAME: SIGTERM the PID of NAME's PID file, then wait for it to exit
  local pid
  pid=$(pid_of "$1") || {
    rm -f "$DIR/run/$1.pid"
    return 0
  }
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 120); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.25
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "$1 (pid $pid) ignored SIGTERM for 30 s; sending SIGKILL"
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$DIR/run/$1.pid"
}

down() {
  if pid_of slurmctld >/dev/null && pid_of slurmd >/dev/null; then
    # Jobs of the cluster die with it, so that none is left running: cancel them and wait
    # until slurmd has reaped their steps (KillWait=10 s after SIGTERM at most).
    scancel --full --quiet --user="$(id -un)" >/dev/null 2>&1 || true
    for _ in $(seq 120); do
      [ -z "$(squeue -h -t running,completing -o %i 2>/dev/null)" ] && break
      sleep 0.25
    done
  fi
  # Reverse start order.
  for name in slurmd slurmctld slurmdbd mariadbd munged; do
    stop "$name"
  done
  log "down (state kept in $DIR)"
}

status() {
  local code=0
  for name in munged mariadbd slurmdbd slurmctld slurmd; do
    if pid=$(pid_of "$name"); then
      echo "$name: running (pid $pid)"
    else
      echo "$name: stopped"
      code=1
    fi
  done
  if [ $code -eq 0 ]; then
    timeout 10 sinfo -N -o "%N %P %T %c CPUs"
    node_idle || code=1
  fi
  return $code
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  env) echo "export SLURM_CONF=$SLURM_CONF" ;;
  install) install_packages ;;
  *)
    echo "usage: $0 up|down|status|env|install   (state under SLURM_LOCAL_DIR=$DIR)" >&2
    exit 2
    ;;
esac
