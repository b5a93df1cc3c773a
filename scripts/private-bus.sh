# SPDX-License-Identifier: MIT
# Sourced by demo.sh and bench.sh: a private system-type dbus-daemon (the host's bus is left
# alone) with Debian's default-deny policy and dkm's own policy file, as the tests use.
# Needs $top (the source tree).

# private_bus DIR: DIR/bus.conf, a socket in DIR, the daemon in the background. Sets
# private_bus_pid and private_bus_address; fails if the daemon prints no address.
private_bus() {
        cat >"$1/bus.conf" <<CONF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=$1/system_bus_socket</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
  </policy>
  <include>$top/policy/dbus/org.dkm.KeyManager1.conf</include>
</busconfig>
CONF
        dbus-daemon --nofork --nosyslog --config-file="$1/bus.conf" --print-address=3 3>"$1/address" &
        private_bus_pid=$!
        for _ in $(seq 100); do [ -s "$1/address" ] && break; sleep 0.05; done
        private_bus_address=$(head -n1 "$1/address")
        if [ -z "$private_bus_address" ]; then
                echo "$0: dbus-daemon printed no address" >&2
                kill "$private_bus_pid" 2>/dev/null
                return 1
        fi
}
