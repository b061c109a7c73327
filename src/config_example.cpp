#include "hozo/config.hpp"

namespace hozo {

std::string example_config() {
  // Keep byte-identical with examples/hozo.yaml (a unit test compares them).
  return R"HOZO_YAML(# Hōzō (hozo) configuration: annotated example.
#
# Where hozo looks for it: -c/--config, else $HOZO_CONFIG, else /etc/hozo/hozo.yaml (as root)
# or ~/.config/hozo/config.yaml. Check a file with:  hozo config validate
#
# The format is compatible with the Python Hōzō (settings: + jobs:, `source` and
# `broadcast_ip` aliases, "daily HH:MM" / "weekly <Day> HH:MM" schedules). Keys marked
# (ext) are hozo extensions.
#
# How to read this file:
#   # key: value        a commented-out line shows the DEFAULT; uncomment it to change it
#   key: value  # (default)   an active line that only repeats the default
#   key: value  # EXAMPLE     a value you must replace with your own (hosts, MACs, datasets)
#   The optional channels (ntfy, Pushover, e-mail, healthchecks, webhook) and the backup disk
#   are commented out: nothing is sent anywhere until you set them up.
#
# Inheritance: every key in settings: (except history and log_keep) is a default for all
# jobs; a job's own value wins. Nested blocks (notifications, smtp, syncoid, wol_relay,
# agent) merge key by key, so a job can change one notification setting and keep the rest.
#
# Values:
#   durations  plain seconds (90) or with units: 90s, 5m, 6h, 1d, 1h30m
#   `key:` or `key: ~` means "not set": the default (or the settings: value) applies
#   secrets    every secret `x` has a twin `x_file` that reads the value from a file (one
#              line; the trailing newline is stripped). A relative path is looked up in
#              $CREDENTIALS_DIRECTORY (systemd LoadCredential=). Give x or x_file, not both.

settings:
  ssh_user: root                # (default) user on the backup box
  ssh_timeout: 120              # (default) how long to wait for the box to boot and answer SSH
  # ssh_port: 22
  # ssh_key: /etc/hozo/id_ed25519  # identity file (no passphrase); default: the first of ~/.ssh/id_ed25519, id_ecdsa, id_rsa
  # ssh_connect_timeout: 10     # (ext) per connection attempt and per remote read
  # known_hosts: /var/lib/hozo/known_hosts  # (ext) default: /var/lib/hozo/known_hosts as root, else ~/.ssh/known_hosts
  # host_key_policy: strict     # (ext) strict | accept-new (trust an unknown key once); a changed key always fails
  # retries: 3                  # syncoid attempts after the first failure (0..100)
  # retry_delay: 60             # pause between attempts
  # no_privilege_elevation: false  # passed to syncoid as --no-privilege-elevation
  # shutdown_after: true        # power the box off when done
  # shutdown_command: "shutdown -h now"  # (ext) run on the box over SSH
  # shutdown_only_if_woken: true  # (ext) leave a box alone that was already running
  # hold_snapshots: true        # (ext) zfs hold hozo:<job> on the last verified snapshot (keeps the chain)
  # host_sharing: concurrent    # (ext) jobs for the same box: concurrent | wait (one after another)
  # host_lock_timeout: 1h       # (ext) how long host_sharing: wait waits for the box
  # target_pool_import: true    # (ext) `zpool import` the target pool when it is not imported
  # target_pool_import_dirs: [/dev/disk/by-id]  # (ext) where zpool import looks (-d); default: zpool's own
  # wol_broadcast: 255.255.255.255  # alias: broadcast_ip
  # wol_port: 9                 # (ext) UDP port of the magic packet
  # wol_interface: eth0         # (ext) send from this interface
  # wol_repeat: 3               # (ext) magic packets per wake attempt (1..100)
  # wol_password: "01:02:03:04:05:06"  # (ext) SecureOn password (or wol_password_file)
  # disk_spinup_timeout: 90     # how long backup_device may take to appear and spin up
  # overdue_after: 36h          # (ext) status/--check: overdue without a success this long; 0 = 1.5x the schedule's period
  history: 50                   # (default) (ext) runs remembered per job in the state file (1..10000)
  log_keep: 20                  # (default) (ext) run logs kept per job (1..10000)

  syncoid:                      # (ext) how syncoid is run
    path: syncoid               # (default) absolute path or a command name in $PATH
    compress: lz4               # EXAMPLE gzip, pigz-fast, pigz-slow, zstd-fast, zstdmt-fast, zstd-slow,
                                # zstdmt-slow, lz4, xz, lzo, none; default: syncoid's own
    # source_bwlimit: 50M       # e.g. 500k, 10M, 1.5G
    # target_bwlimit: 50M
    # identifier: offsite       # --identifier, keeps sync snapshots of several targets apart
    # exclude: ["tank/data/tmp"]  # regular expressions of datasets to skip
    # create_bookmark: false    # unset: on with no_sync_snap where the source pool has bookmarks
    # no_sync_snap: false
    # sendoptions: "w"          # one line each, passed to syncoid as given
    # recvoptions: "u"
    # extra_args: ["--no-rollback"]  # more syncoid arguments, one list item per argument
    timeout: 24h                # (default) a sync running longer than this is killed

  notifications:
    # notify_on: [success, failure]  # (ext) which outcomes are reported
    # Every channel is off until you set it. Reports name hosts and datasets: on the public
    # ntfy.sh server anyone who guesses the topic reads them (use a long random topic, an
    # access token, or your own ntfy_server).
    # ntfy_topic: hozo-CHANGE-ME-7f3a9c  # EXAMPLE; not set: ntfy off
    # ntfy_server: https://ntfy.sh   # (ext)
    # ntfy_token_file: ntfy-token    # (ext) access token (or ntfy_token)
    # pushover_token: ...            # empty: Pushover off (or pushover_token_file)
    # pushover_user: ...             # (or pushover_user_file)
    # pushover_url: https://api.pushover.net/1/messages.json  # (ext)
    # healthchecks_url: https://hc-ping.com/00000000-0000-0000-0000-000000000000  # (ext) /start and /fail are appended
    # webhook_url: https://hooks.example.com/hozo  # (ext) receives the run result as JSON
    # timeout: 10                    # (ext) per notification request
    # smtp:                          # EXAMPLE e-mail; not set (or host: ""): e-mail off
    #   host: smtp.example.com
    #   port: 587                    # default
    #   user: backup@example.com
    #   password_file: smtp-password # (ext) or password: ...
    #   from_addr: backup@example.com
    #   to_addr: admin@example.com   # one address or a list
    #   use_tls: true                # default: STARTTLS (smtps on port 465)

# Schedules (shown as the next run by `hozo jobs list`; "" or no schedule: manual runs only;
# `hozo schedule --install` turns them into systemd timers, `--cron` into cron lines).
# Time zones: the Python Hōzō forms "daily HH:MM" / "weekly <Day> HH:MM" are UTC; every other
# form is this machine's local time unless it ends in " UTC". Every display names the zone.
#   "daily 03:00", "weekly Sunday 03:00"  the Python Hōzō forms (UTC)
#   "30 2 * * 1-5"                        5-field cron (local time)
#   "Mon..Fri *-*-* 02:30", "Sun 03:00", "daily", "*-*-* 03:00:00 UTC"  systemd OnCalendar (local, or UTC)
#
# Settings shared by several jobs can also be written once with a YAML anchor and merged in with
# `<<: *name`; top-level keys starting with "x-" are free for such anchors:
#   x-box: &box {target_host: 192.0.2.10, mac_address: "00:11:22:33:44:55"}
#   jobs: [{<<: *box, name: a, source: tank/a, target_dataset: backup/a}]

jobs:
  # The Python Hōzō form: one dataset per job.
  # Every value in the jobs below is an EXAMPLE: replace names, datasets, hosts and MACs.
  - name: tank-data              # 1-64 of A-Z a-z 0-9 _ . - (used in file and unit names)
    description: Photos and documents
    source_dataset: tank/data    # alias: source
    target_dataset: backup/tank-data
    target_host: 192.0.2.10      # host name or IPv4/IPv6 address
    mac_address: "00:11:22:33:44:55"  # the box's network card; required unless the job sets wol: false
    recursive: true              # (default) include child datasets
    wol_broadcast: 192.0.2.255   # default 255.255.255.255
    schedule: "weekly Sunday 03:00"  # UTC (the Python Hōzō form)
    # backup_device: /dev/disk/by-id/ata-YOUR-DISK-SERIAL  # wait for this disk and spin it up before syncing
    # disk_spinup_timeout: 90

  # hozo extensions: several datasets, a wake-up relay, per-job overrides.
  - name: offsite-vms
    description: VMs and home directories, woken through a relay on the remote LAN
    datasets:                    # instead of source_dataset/target_dataset
      - source: tank/vms
        target: backup/vms
      - source: tank/home
        target: backup/home
        recursive: false         # default: the job's recursive
    target_host: backup.example.com
    ssh_port: 2222
    mac_address: "00-11-22-33-44-66"
    schedule: "Mon..Fri *-*-* 02:30"  # local time
    wol_relay:                   # (ext) an always-on host next to the box sends the packet
      host: 198.51.100.7
      user: pi
      port: 22
      # ssh_key: /etc/hozo/relay_key
      command: [wakeonlan, -i, "{broadcast}", -p, "{port}", "{mac}"]
    host_sharing: wait
    # agent:                     # (ext) backupd on the box
    #   url: http://198.51.100.8:9999
    #   token_file: backupd-token
    notifications:
      notify_on: [failure]       # only this key changes; the rest comes from settings
    syncoid:
      source_bwlimit: 20M

  # A box that is always on (or woken some other way): no Wake-on-LAN, no shutdown.
  - name: nas-mirror
    source: tank/media
    target_dataset: vault/media
    target_host: nas.example.com
    wol: false                   # (ext) no magic packet; mac_address may be left out
    shutdown_after: false
    schedule: ""                 # manual runs only
)HOZO_YAML";
}

}  // namespace hozo
