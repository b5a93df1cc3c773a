#!/bin/bash
# SPDX-License-Identifier: MIT
# docs/FLEET.md "Deploying a fleet", the directory part, as written: two slapd servers left the
# way Debian's dpkg-reconfigure leaves them, then the doc's own commands and LDIF (cut out of the
# doc, not retyped, so this fails when the doc does) on both; then web-1 and web-2 with the real
# dkm-store. dkmd's part of the walk-through is tests/test-fleet-{dkmd,enrol,hosts}.c's.
#
# Usage: test-fleet-walkthrough.sh BUILD_DIR SOURCE_DIR, as root (ldapi:// EXTERNAL is uid 0).
# Exit 77 without slapd and ldap-utils.
set -euo pipefail

build=${1:?usage: test-fleet-walkthrough.sh BUILD_DIR SOURCE_DIR}
src=${2:?usage: test-fleet-walkthrough.sh BUILD_DIR SOURCE_DIR}
doc=$src/docs/FLEET.md
dkm_store=$build/src/tools/dkm-store
suffix=dc=example,dc=org
base=ou=dkm,$suffix

for p in /usr/sbin/slapd /usr/sbin/slapadd slappasswd ldapadd ldapmodify ldapsearch; do
        command -v "$p" >/dev/null || { echo "skip: $p not installed (slapd, ldap-utils)"; exit 77; }
done
[ "$(id -u)" = 0 ] || { echo "test-fleet-walkthrough.sh: run it as root" >&2; exit 1; }

tmp=$(mktemp -d /tmp/dkm-walk.XXXXXX)
pids=()
cleanup() {
        local rc=$?
        [ $rc = 0 ] || [ $rc = 77 ] || echo "FAIL: the walk-through stopped after: ${last:-the start}" >&2
        for pid in "${pids[@]}"; do
                kill "$pid" 2>/dev/null || true
                wait "$pid" 2>/dev/null || true
        done
        rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
umask 077
# ldap.conf and ~/.ldaprc of the machine must not change what the doc's commands do.
export LDAPNOINIT=1

fail() { echo "FAIL: $*" >&2; exit 1; }
passed() { last=$*; echo "walkthrough: $*"; }
ms_since() { echo $(( (${EPOCHREALTIME/./} - $1) / 1000 )); }

# Every identity's password in a file: -y reads the whole file (no newline), fleet.conf's
# BindPasswordFile= its first line.
declare -A dn=([admin]="cn=admin,$suffix" [alice]="cn=alice,ou=people,$suffix")
mkdir "$tmp/pw"
for who in admin alice replicator web-1 web-2 outsider; do
        dn[$who]=${dn[$who]:-cn=$who,ou=identities,$suffix}
        printf '%s' "walk-$who-$RANDOM$RANDOM" >"$tmp/pw/$who"
done
pw() { cat "$tmp/pw/$1"; }

# doc_block HEADING STEP: the fenced block of list item STEP under the heading, unindented.
doc_block() {
        local text
        text=$(awk -v head="$1" -v step="$2" '
                !fence && /^#/ { in_head = index($0, head) == 1; item = 0; next }
                !in_head { next }
                !fence && /^[0-9]+\. / { item = $1 + 0; next }
                /^ *```/ { if (fence && item == step) exit; fence = !fence; next }
                fence && item == step { sub(/^   /, ""); print }' "$doc")
        [ -n "$text" ] || fail "docs/FLEET.md: no block in \"$1\" step $2"
        printf '%s\n' "$text"
}

# The only changes made to the doc's text: the servers' addresses and the passwords (and, where
# they are used, the store id and web-2's public key).
localize() {
        sed -e "s|ldap://ldap1.example.org/|${uri[1]}|g" -e "s|ldap://ldap2.example.org/|${uri[2]}|g" \
                -e "s|SECRET|$(pw replicator)|g" -e "s|WEB-1-PASSWORD|$(pw web-1)|g" \
                -e "s|WEB-2-PASSWORD|$(pw web-2)|g" -e "s|ALICE-PASSWORD|$(pw alice)|g"
}

# run_doc_ldapadd BLOCK: a block's "ldapadd ... -W <<EOF" with its here-document; the prompt of
# -W answered from the bind DN's password file.
run_doc_ldapadd() {
        local cmd who argv
        cmd=$(sed -n 's/ *<<EOF$//p' <<<"$1" | localize)
        who=$(sed -n 's/.* -D cn=\([^,]*\),.*/\1/p' <<<"$cmd")
        read -ra argv <<<"${cmd/ -W/ -y $tmp/pw/$who}"
        [ "${argv[0]}" = ldapadd ] || fail "not an ldapadd command: $cmd"
        awk '/<<EOF$/ { on = 1; next } /^EOF$/ { on = 0 } on' <<<"$1" | localize | "${argv[@]}" >/dev/null
}

as() { # as WHO SERVER ldapsearch|ldapmodify|ldapadd ARGS...: simple bind, "anonymous" binds none
        local who=$1 n=$2 tool=$3 bind=()
        shift 3
        [ "$who" = anonymous ] || bind=(-D "${dn[$who]}" -y "$tmp/pw/$who")
        "$tool" -x -H "${uri[n]}" "${bind[@]}" "$@"
}
read_attr() { # read_attr WHO SERVER DN ATTR: the value (decoded), empty if not visible
        as "$1" "$2" ldapsearch -LLL -o ldif-wrap=no -b "$3" -s base "(objectClass=*)" "$4" 2>/dev/null |
                awk -v a="$4" '$1 == a":" { print substr($0, length(a) + 3) } $1 == a"::" { print $2 | "base64 -d" }' || true
}
has_attr() { [ -n "$(read_attr "$@")" ]; }
within_10s() { # within_10s WHAT CMD...: CMD again until it succeeds
        local what=$1 deadline=$((${EPOCHREALTIME/./} + 10000000))
        shift
        until "$@" >/dev/null 2>&1; do
                ((${EPOCHREALTIME/./} < deadline)) || fail "$what: not within 10 s"
                sleep 0.01
        done
}
wait_for() { within_10s "$2 on ldap$1" as admin "$1" ldapsearch -LLL -b "$2" -s base 1.1; }

# 1.1 "dpkg-reconfigure slapd": Debian's slapd.init.ldif (its schemas, back_mdb, the peercred
# manage rule on cn=config, {1}mdb with a root DN) and its base entry, added with slapadd.
dpkg_reconfigure_slapd() {
        local n=$1 dir=$tmp/ldap$1
        mkdir -p "$dir/slapd.d" "$dir/db"
        cat >"$dir/config.ldif" <<EOF
dn: cn=config
objectClass: olcGlobal
cn: config

dn: olcDatabase={-1}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {-1}frontend
olcAccess: {0}to * by dn.exact=gidNumber=0+uidNumber=0,cn=peercred,cn=external,cn=auth manage by * break
olcAccess: {1}to dn.exact="" by * read
olcAccess: {2}to dn.base="cn=Subschema" by * read

dn: olcDatabase={0}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {0}config
olcAccess: {0}to * by dn.exact=gidNumber=0+uidNumber=0,cn=peercred,cn=external,cn=auth manage by * break

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

$(for schema in core cosine nis inetorgperson; do printf 'include: file:///etc/ldap/schema/%s.ldif\n\n' $schema; done)

dn: cn=module{0},cn=config
objectClass: olcModuleList
cn: module{0}
olcModulePath: /usr/lib/ldap
olcModuleLoad: back_mdb

dn: olcDatabase={1}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {1}mdb
olcDbMaxSize: 67108864
olcSuffix: $suffix
olcDbDirectory: $dir/db
olcRootDN: ${dn[admin]}
olcRootPW: $(slappasswd -s "$(pw admin)")
olcDbIndex: objectClass eq
olcDbIndex: cn,uid eq
olcDbIndex: member,memberUid eq
olcAccess: {0}to attrs=userPassword by self write by anonymous auth by * none
olcAccess: {1}to attrs=shadowLastChange by self write by * read
olcAccess: {2}to * by * read
EOF
        /usr/sbin/slapadd -n0 -F "$dir/slapd.d" -l "$dir/config.ldif" >"$dir/slapadd.log" 2>&1 ||
                fail "slapadd -n0 for ldap$n: $(cat "$dir/slapadd.log")"
        printf 'dn: %s\nobjectClass: top\nobjectClass: dcObject\nobjectClass: organization\no: example.org\ndc: example\n' \
                "$suffix" | /usr/sbin/slapadd -F "$dir/slapd.d" -b "$suffix" >>"$dir/slapadd.log" 2>&1 ||
                fail "slapadd of $suffix for ldap$n: $(cat "$dir/slapadd.log")"
}

# slapd in the foreground (-d 0: the pid is slapd's), killed if this script dies (--pdeathsig),
# on a loopback port nobody answers on and an ldapi socket in its directory.
declare -a uri ldapi
start_slapd() {
        local n=$1 dir=$tmp/ldap$1 port pid
        for _ in 1 2 3; do
                port=$((20000 + RANDOM % 20000))
                (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && continue
                uri[n]=ldap://127.0.0.1:$port/
                ldapi[n]=ldapi://${dir//\//%2F}%2Fldapi
                setpriv --pdeathsig KILL -- /usr/sbin/slapd -F "$dir/slapd.d" -h "${uri[n]} ${ldapi[n]}" -d 0 \
                        >>"$dir/slapd.log" 2>&1 &
                pid=$!
                pids+=("$pid")
                for _ in $(seq 250); do
                        as admin "$n" ldapsearch -LLL -b "$suffix" -s base 1.1 >/dev/null 2>&1 && return 0
                        kill -0 "$pid" 2>/dev/null || break
                        sleep 0.02
                done
                kill "$pid" 2>/dev/null || true # a port taken meanwhile: try another
        done
        fail "slapd ldap$n does not start: $(tail -5 "$dir/slapd.log")"
}

# 1.2 to 1.4, on each server, over its ldapi socket as root.
load_schema() { ldapadd -Y EXTERNAL -Q -H "${ldapi[$1]}" -f "$src/policy/ldap/dkm.ldif" >/dev/null; }
replication() { # ldap2's version is the one the doc's prose gives
        local ldif
        ldif=$(doc_block "### 1. The directory" 3 | localize)
        [ "$1" = 1 ] || ldif=$(sed -e 's/^olcServerID: 1$/olcServerID: 2/' \
                -e "s|rid=002 provider=${uri[2]}|rid=001 provider=${uri[1]}|" <<<"$ldif")
        grep -q "olcServerID: $1" <<<"$ldif" && grep -q "provider=${uri[3 - $1]}" <<<"$ldif" ||
                fail "step 1.3: the doc's LDIF does not name ldap$((3 - $1)) as the provider"
        ldapmodify -Y EXTERNAL -Q -H "${ldapi[$1]}" <<<"$ldif" >/dev/null
}
acls() { ldapmodify -Y EXTERNAL -Q -H "${ldapi[$1]}" -f "$src/policy/ldap/dkm-acl.ldif.example" >/dev/null; }
entries() { run_doc_ldapadd "$(doc_block "### 1. The directory" 5)"; }

probes=0
check_replication() { # check_replication FROM TO [WHAT]: an entry made on one is on the other, timed
        local from=$1 to=$2 t0
        t0=${EPOCHREALTIME/./}
        probes=$((probes + 1))
        printf 'dn: ou=probe-%s,%s\nobjectClass: organizationalUnit\nou: probe-%s\n' $probes "$suffix" $probes |
                as admin "$from" ldapadd >/dev/null
        wait_for "$to" "ou=probe-$probes,$suffix"
        passed "replication ldap$from -> ldap$to${3:+ ($3)}: $(ms_since "$t0") ms"
}

# 2.1 and 2.2: web-1's store, its id published by the fleet's administrator.
first_host_store() {
        DKM_STATE_DIR=$tmp/web-1 "$dkm_store" init >/dev/null
        store_id=$(DKM_STATE_DIR=$tmp/web-1 "$dkm_store" fleet store-id)
        [[ $store_id =~ ^[0-9a-f]{32}$ ]] || fail "dkm-store fleet store-id printed '$store_id'"
}
publish_store_id() {
        run_doc_ldapadd "$(doc_block "### 2. The first host" 2 | sed "s/<the 32 hex digits>/$store_id/")"
}

# 2.3: fleet.conf from the shipped example, only the addresses, identity and password file
# changed; then what dkmd does with it at start: bind as BindDN= to the first of Uris=, read the
# store id under Base= and compare it with the local store's.
fleet_conf() {
        local host=$1 conf=$tmp/$1.fleet.conf password=$tmp/$1.fleet.password uris b bind_dn id
        sed -e "s|^Host=.*|Host=$host|" -e "s|cn=web-1,|cn=$host,|" -e "s|^BindPasswordFile=.*|BindPasswordFile=$password|" \
                "$src/units/examples/fleet.conf" | localize >"$conf"
        { pw "$host"; echo; } >"$password"
        uris=$(sed -n 's/^Uris=//p' "$conf")
        b=$(sed -n 's/^Base=//p' "$conf")
        bind_dn=$(sed -n 's/^BindDN=//p' "$conf")
        [ "$uris" = "${uri[1]} ${uri[2]}" ] && [ "$b" = "$base" ] || fail "$host's fleet.conf: Uris=$uris Base=$b"
        id=$(ldapsearch -x -LLL -H "${uris%% *}" -D "$bind_dn" -y <(head -1 "$password" | tr -d '\n') \
                -b "cn=store,$b" -s base dkmStoreId | sed -n 's/^dkmStoreId: //p') || true
        [ "$id" = "$store_id" ] || fail "$host's fleet.conf: BindDN=$bind_dn reads store id '$id', want $store_id"
        passed "$host's fleet.conf binds and reads the fleet's store id"
}

# A group as a host publishes it: web-1 creates a key group; the hosts group may add it under
# ou=groups. (dkmd appends the fleet's seal line, FLEET.md "Integrity"; the directory does not
# look inside the value, so the plain file shows the same rights.)
publish_group() {
        DKM_STATE_DIR=$tmp/web-1 "$dkm_store" group create mail-creds --gid=root >/dev/null
        printf 'dn: cn=mail-creds,ou=groups,%s\nobjectClass: dkmKeyGroup\ncn: mail-creds\ndkmRevision: 1\ndkmGroupFile:< file://%s\n' \
                "$base" "$tmp/web-1/groups/mail-creds.group" | as web-1 1 ldapadd >/dev/null
        wait_for 2 "cn=mail-creds,ou=groups,$base"
        read_attr web-1 2 "cn=mail-creds,ou=groups,$base" dkmGroupFile >"$tmp/mail-creds.ldap2"
        cmp -s "$tmp/mail-creds.ldap2" "$tmp/web-1/groups/mail-creds.group" ||
                fail "web-1 does not read back on ldap2 the group file it wrote on ldap1"
        passed "web-1 writes a group on ldap1 and reads its file back on ldap2"
}

# 3.1 and 3.2: web-2 joins; alice approves it with the doc's host entry; the root DN adds its identity.
other_host_join() {
        web2_key=$(DKM_STATE_DIR=$tmp/web-2 "$dkm_store" fleet join "$store_id" 2>/dev/null)
        [[ $web2_key =~ ^[0-9a-f]{64}$ ]] || fail "dkm-store fleet join printed '$web2_key'"
}
host_entry() {
        run_doc_ldapadd "$(doc_block "## Host enrolment" 2 | sed "s/^dkmHostPublicKey: .*/dkmHostPublicKey: $web2_key/")"
        run_doc_ldapadd "$(doc_block "### 3. The other hosts" 2)"
        wait_for 2 "cn=web-2,ou=hosts,$base"
        [ "$(read_attr web-1 2 "cn=web-2,ou=hosts,$base" dkmHostPublicKey)" = "$web2_key" ] ||
                fail "web-1 does not read web-2's public key on ldap2"
        passed "alice adds web-2's host entry, hosts read its key"
}

check_acls() { # the doc's "Access control", as the identities the walk-through made
        local g=cn=mail-creds,ou=groups,$base
        [ "$(read_attr alice 1 "$g" dkmRevision)" = 1 ] && [ -z "$(read_attr alice 1 "$g" dkmGroupFile)" ] ||
                fail "alice (dkm-admins) must see the group's revision and not its file"
        printf 'dn: %s\nchangetype: modify\nreplace: dkmGroupFile\ndkmGroupFile: x\n' "$g" |
                as alice 1 ldapmodify >/dev/null 2>&1 && fail "alice could write a group file"
        printf 'dn: %s\nobjectClass: applicationProcess\nobjectClass: simpleSecurityObject\ncn: outsider\nuserPassword: %s\n' \
                "${dn[outsider]}" "$(pw outsider)" | as admin 1 ldapadd >/dev/null
        wait_for 2 "${dn[outsider]}"
        [ -n "$(as outsider 2 ldapsearch -LLL -b "${dn[outsider]}" -s base 1.1)" ] || fail "the outsider cannot bind"
        [ -z "$(as outsider 2 ldapsearch -LLL -b "$base" dkmGroupFile dkmProtectorFile dkmStoreId 2>/dev/null)" ] ||
                fail "an identity in neither group sees something under $base"
        [ -z "$(as anonymous 2 ldapsearch -LLL -b "$suffix" 2>/dev/null)" ] || fail "anonymous reads entries"
        cmp -s <(read_attr web-2 2 "$g" dkmGroupFile) "$tmp/web-1/groups/mail-creds.group" ||
                fail "web-2 (now in dkm-hosts) does not read the group file"
        passed "ACLs: alice sees revisions not files, an outsider and anonymous nothing, hosts the files"
}

# 3.3 and 3.4 without dkmd ("Without dkmd" in the doc): web-1 seals the root key to web-2's key
# and stores it in web-2's entry; web-2 reads it on ldap2, installs it and opens the group.
enrol_offline() {
        local e=cn=web-2,ou=hosts,$base
        DKM_STATE_DIR=$tmp/web-1 "$dkm_store" fleet seal-for-host fleet-web-2 "$web2_key" >"$tmp/fleet-web-2.protector"
        printf 'dn: %s\nchangetype: modify\nreplace: dkmProtectorFile\ndkmProtectorFile:< file://%s\n' \
                "$e" "$tmp/fleet-web-2.protector" | as web-1 1 ldapmodify >/dev/null
        [ -z "$(read_attr alice 1 "$e" dkmProtectorFile)" ] || fail "alice reads web-2's protector file"
        within_10s "web-2's protector file on ldap2" has_attr web-2 2 "$e" dkmProtectorFile
        read_attr web-2 2 "$e" dkmProtectorFile >"$tmp/web-2.protector"
        DKM_STATE_DIR=$tmp/web-2 "$dkm_store" fleet install fleet-web-2 "$tmp/web-2.protector" >/dev/null
        # dkmd's follower would import the group file; the same bytes from ldap2, by hand
        install -m 0600 "$tmp/mail-creds.ldap2" "$tmp/web-2/groups/mail-creds.group"
        DKM_STATE_DIR=$tmp/web-2 "$dkm_store" check | grep -q '^mail-creds: ok' ||
                fail "web-2 does not open mail-creds with the protector from the directory"
        passed "web-2 installs its protector from ldap2 and unwraps mail-creds"
}

t0=${EPOCHREALTIME/./}
for n in 1 2; do dpkg_reconfigure_slapd $n; start_slapd $n; done
passed "two slapd as dpkg-reconfigure leaves them: $(ms_since "$t0") ms"
for n in 1 2; do load_schema $n; replication $n; acls $n; done
passed "1.2-1.4 schema, replication, ACLs applied to ldap1 and ldap2"
t0=${EPOCHREALTIME/./}
entries 1
wait_for 2 "ou=hosts,$base"
passed "1.5 entries added on ldap1, on ldap2 after $(ms_since "$t0") ms"
# The first write from ldap2 may wait for ldap1's consumer, which retries every 5 s ("retry=5 +")
# since step 1.3 and only binds once step 1.5's replicator entry has reached ldap2.
check_replication 1 2 first
check_replication 2 1 first
check_replication 1 2
check_replication 2 1
first_host_store
publish_store_id
wait_for 2 "cn=store,$base"
passed "2.2 alice publishes store id $store_id"
fleet_conf web-1
publish_group
other_host_join
host_entry
check_acls
enrol_offline
fleet_conf web-2
passed "all steps passed"
