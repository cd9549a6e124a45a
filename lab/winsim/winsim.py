#!/usr/bin/python3
"""winsim: the lab's Windows node, an SMB server that stands in for Windows.

It serves, on one TCP port (445), with impacket's SimpleSMBServer (SMB 2.0.2,
NTLMv2, one user):

  ADMIN$          the Wine prefix's C:\\Windows (unless --no-admin-share)
  \\PIPE\\svcctl    MS-SCMR: OpenSCManager, OpenService, CreateService,
                  StartService, ControlService, QueryServiceStatus,
                  QueryServiceConfig, EnumServicesStatus, DeleteService,
                  CloseServiceHandle, each carried out by Wine's own service
                  manager in the prefix (wine sc.exe, wine reg.exe)
  \\PIPE\\lsarpc    just enough LSA (open policy, query the domain, close)
                  for Samba's `net rpc service ...` to get going

A persistent wineserver (wineserver -p) keeps the prefix's service manager,
and the services it started, alive between wine calls; the server stops it
(wineserver -k) when it ends on SIGTERM or SIGINT.

Run it with Debian's /usr/bin/python3 (python3-impacket), inside the node's
network and mount namespaces; package lab (windows.go) does.
"""

import argparse
import logging
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import types

from impacket import ntlm, smb3structs, smbserver
from impacket.dcerpc.v5 import lsad, scmr
from impacket.dcerpc.v5.dtypes import NULL, RPC_SID
from impacket.dcerpc.v5.rpcrt import DCERPCServer
from impacket.nt_errors import (STATUS_BAD_NETWORK_NAME, STATUS_MORE_PROCESSING_REQUIRED,
                                STATUS_OBJECT_PATH_NOT_FOUND, STATUS_SUCCESS)

LOG = logging.getLogger("winsim")

# Win32 error codes the SCM returns.
ERROR_SUCCESS = 0
ERROR_ACCESS_DENIED = 5
ERROR_INVALID_HANDLE = 6
ERROR_INVALID_PARAMETER = 87
ERROR_MORE_DATA = 234
ERROR_SERVICE_REQUEST_TIMEOUT = 1053
ERROR_SERVICE_ALREADY_RUNNING = 1056
ERROR_SERVICE_DOES_NOT_EXIST = 1060
ERROR_SERVICE_CANNOT_ACCEPT_CTRL = 1061
ERROR_SERVICE_NOT_ACTIVE = 1062
ERROR_SERVICE_MARKED_FOR_DELETE = 1072
ERROR_SERVICE_EXISTS = 1073
ERROR_CALL_NOT_IMPLEMENTED = 120

SERVICE_CONTROL_STOP = 1
SERVICE_STOPPED, SERVICE_RUNNING = 1, 4
SERVICE_WIN32 = 0x30

SERVICES_KEY = "HKLM\\System\\CurrentControlSet\\Services"


class Wine:
    """Runs Wine programs in one prefix, serialised: the SCM is driven one
    call at a time, as a real SCM's database lock would."""

    def __init__(self, prefix, wine, wineserver, logfile):
        self.prefix = prefix
        self.wine = wine
        self.wineserver = wineserver
        self.logfile = logfile
        self.lock = threading.Lock()
        self.env = dict(os.environ)
        self.env.update(WINEPREFIX=prefix, WINEDEBUG="-all",
                        WINESERVER=wineserver,
                        WINEDLLOVERRIDES="mscoree,mshtml=;winemenubuilder.exe=d")

    def start(self):
        """Starts the persistent wineserver and the prefix's system
        processes (services.exe and what it starts), their output going to
        the log: they outlive every call, so they must not hold a call's
        pipes."""
        with open(self.logfile, "ab") as log:
            subprocess.run([self.wineserver, "-p"], env=self.env, stdin=subprocess.DEVNULL,
                           stdout=log, stderr=log)  # exit 2: already running
            subprocess.run([self.wine, "sc.exe", "query", "winsim-warm-up"], env=self.env,
                           stdin=subprocess.DEVNULL, stdout=log, stderr=log, timeout=120)

    def stop(self):
        subprocess.run([self.wineserver, "-k"], env=self.env, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)

    def run(self, *args, timeout=60):
        """Runs `wine ARGS...`; returns (exit code, output). The output goes
        through a file, never a pipe that a process started by the call
        could keep open."""
        with self.lock, tempfile.TemporaryFile() as out:
            try:
                rc = subprocess.run([self.wine, *args], env=self.env, stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=subprocess.STDOUT, timeout=timeout).returncode
            except subprocess.TimeoutExpired:
                rc = -1
            out.seek(0)
            text = out.read().decode("utf-8", "replace")
        LOG.info("wine %s: exit %d: %s", " ".join(args), rc, text.strip().replace("\n", " | ")[:400])
        return rc, text

    # The service manager's operations, as a real SCM reports them.

    def query(self, name):
        """Returns (error, state) of service name."""
        rc, out = self.run("sc.exe", "query", name)
        if rc != 0:
            return ERROR_SERVICE_DOES_NOT_EXIST, 0
        m = re.search(r"STATE\s*:\s*(\d+)", out)
        return ERROR_SUCCESS, int(m.group(1)) if m else 0

    def exists(self, name):
        return self.query(name)[0] == ERROR_SUCCESS

    def create(self, name, binpath, display):
        if self.exists(name):
            return ERROR_SERVICE_EXISTS
        args = ["sc.exe", "create", name, "binPath=", binpath, "type=", "own", "start=", "demand"]
        if display:
            args += ["DisplayName=", display]
        rc, _ = self.run(*args)
        return ERROR_SUCCESS if rc == 0 else ERROR_ACCESS_DENIED

    def start_service(self, name):
        err, state = self.query(name)
        if err:
            return err
        if state != SERVICE_STOPPED:
            return ERROR_SERVICE_ALREADY_RUNNING
        rc, _ = self.run("sc.exe", "start", name, timeout=90)
        if rc == 0:
            return ERROR_SUCCESS
        err, state = self.query(name)
        if err:
            return err
        return ERROR_SERVICE_ALREADY_RUNNING if state == SERVICE_RUNNING else ERROR_SERVICE_REQUEST_TIMEOUT

    def stop_service(self, name):
        err, state = self.query(name)
        if err:
            return err
        if state == SERVICE_STOPPED:
            return ERROR_SERVICE_NOT_ACTIVE
        rc, _ = self.run("sc.exe", "stop", name)
        return ERROR_SUCCESS if rc == 0 else ERROR_SERVICE_CANNOT_ACCEPT_CTRL

    def delete(self, name):
        if not self.exists(name):
            return ERROR_SERVICE_DOES_NOT_EXIST
        rc, _ = self.run("sc.exe", "delete", name)
        return ERROR_SUCCESS if rc == 0 else ERROR_SERVICE_MARKED_FOR_DELETE

    def registry(self, key):
        """Returns {subkey name: {value name: value}} of the keys directly
        below key (and key itself under "")."""
        rc, out = self.run("reg.exe", "query", key, "/s")
        keys = {}
        cur = None
        prefix = key.lower() + "\\"
        for line in out.splitlines():
            if line.startswith("HKEY_"):
                path = line.strip().replace("HKEY_LOCAL_MACHINE", "HKLM", 1)
                if path.lower() == key.lower():
                    cur = keys.setdefault("", {})
                elif path.lower().startswith(prefix) and "\\" not in path[len(prefix):]:
                    cur = keys.setdefault(path[len(prefix):], {})
                else:
                    cur = None
            elif cur is not None and line.startswith("    "):
                parts = re.split(r"\s{4}", line.strip(), maxsplit=2)
                if len(parts) == 3:
                    vname, vtype, val = parts
                    if vtype == "REG_DWORD":
                        val = int(val, 16)
                    cur[vname] = val
                elif len(parts) == 2:
                    cur[parts[0]] = ""
        return keys

    def services(self):
        """Returns [(name, values)] of the Win32 services the SCM knows."""
        out = []
        for name, vals in sorted(self.registry(SERVICES_KEY).items()):
            if name and isinstance(vals.get("Type"), int) and vals["Type"] & SERVICE_WIN32:
                out.append((name, vals))
        return out

    def config(self, name):
        keys = self.registry(SERVICES_KEY + "\\" + name)
        return keys.get("")


def handle():
    return secrets.token_bytes(20)


def logged(name, fn):
    """Wraps an RPC callback so that its failure is logged: impacket's
    DCERPCServer drops the connection without a word."""
    def call(data):
        try:
            return fn(data)
        except Exception:
            LOG.exception("%s failed", name)
            raise
    return call


class Server(DCERPCServer):
    def addCallbacks(self, iface, pipe, callbacks):
        DCERPCServer.addCallbacks(self, iface, pipe,
                                  {op: logged("%s opnum %d" % (pipe, op), fn) for op, fn in callbacks.items()})


def rpc_handle(data):
    """An SC_RPC_HANDLE as impacket 0.10's NDR wants it set and reads it:
    the 20 raw bytes."""
    return data


def handle_bytes(h):
    return h if isinstance(h, (bytes, bytearray)) else h["Data"]


class SCMRServer(Server):
    """MS-SCMR on \\PIPE\\svcctl, carried out by Wine's SCM."""

    def __init__(self, wine, refuse_create):
        DCERPCServer.__init__(self)
        self.wine = wine
        self.refuse_create = refuse_create
        self.handles = {}  # 20 bytes -> None (the SCM) or a service name
        self.addCallbacks(("367ABB81-9844-35F1-AD32-98F038001003", "2.0"), "\\PIPE\\svcctl", {
            0: self.close,
            1: self.control,
            2: self.delete,
            6: self.query_status,
            12: self.create,
            14: self.enum_services,
            15: self.open_scm,
            16: self.open_service,
            17: self.query_config,
            19: self.start_service,
        })

    def lookup(self, h, want_scm):
        """Returns (True, name) for a known handle of the right kind."""
        key = handle_bytes(h)
        if key not in self.handles:
            return False, None
        name = self.handles[key]
        if want_scm != (name is None):
            return False, None
        return True, name

    def status(self, state, win32=0):
        s = scmr.SERVICE_STATUS()
        s["dwServiceType"] = scmr.SERVICE_WIN32_OWN_PROCESS
        s["dwCurrentState"] = state
        s["dwControlsAccepted"] = 1 if state == SERVICE_RUNNING else 0
        s["dwWin32ExitCode"] = win32
        s["dwServiceSpecificExitCode"] = 0
        s["dwCheckPoint"] = 0
        s["dwWaitHint"] = 0
        return s

    def open_scm(self, data):
        req = scmr.ROpenSCManagerW(data)
        ans = scmr.ROpenSCManagerWResponse()
        h = handle()
        self.handles[h] = None
        LOG.info("OpenSCManager access 0x%x", req["dwDesiredAccess"])
        ans["lpScHandle"] = rpc_handle(h)
        ans["ErrorCode"] = ERROR_SUCCESS
        return ans

    def open_service(self, data):
        req = scmr.ROpenServiceW(data)
        ans = scmr.ROpenServiceWResponse()
        name = req["lpServiceName"].rstrip("\x00")
        ok, _ = self.lookup(req["hSCManager"], True)
        ans["lpServiceHandle"] = rpc_handle(b"\x00" * 20)
        if not ok:
            ans["ErrorCode"] = ERROR_INVALID_HANDLE
        elif not self.wine.exists(name):
            ans["ErrorCode"] = ERROR_SERVICE_DOES_NOT_EXIST
        else:
            h = handle()
            self.handles[h] = name
            ans["lpServiceHandle"] = rpc_handle(h)
            ans["ErrorCode"] = ERROR_SUCCESS
        LOG.info("OpenService %s: %d", name, ans["ErrorCode"])
        return ans

    def create(self, data):
        req = scmr.RCreateServiceW(data)
        ans = scmr.RCreateServiceWResponse()
        name = req["lpServiceName"].rstrip("\x00")
        binpath = req["lpBinaryPathName"].rstrip("\x00")
        display = req["lpDisplayName"]
        display = "" if display in (NULL, None) else display.rstrip("\x00")
        ok, _ = self.lookup(req["hSCManager"], True)
        ans["lpdwTagId"] = NULL
        ans["lpServiceHandle"] = rpc_handle(b"\x00" * 20)
        if not ok:
            err = ERROR_INVALID_HANDLE
        elif self.refuse_create:
            err = ERROR_ACCESS_DENIED
        elif not name or not binpath:
            err = ERROR_INVALID_PARAMETER
        else:
            err = self.wine.create(name, binpath, display)
        if err == ERROR_SUCCESS:
            h = handle()
            self.handles[h] = name
            ans["lpServiceHandle"] = rpc_handle(h)
        ans["ErrorCode"] = err
        LOG.info("CreateService %s %r: %d", name, binpath, err)
        return ans

    def start_service(self, data):
        req = scmr.RStartServiceW(data)
        ans = scmr.RStartServiceWResponse()
        ok, name = self.lookup(req["hService"], False)
        ans["ErrorCode"] = self.wine.start_service(name) if ok else ERROR_INVALID_HANDLE
        LOG.info("StartService %s: %d", name, ans["ErrorCode"])
        return ans

    def control(self, data):
        req = scmr.RControlService(data)
        ans = scmr.RControlServiceResponse()
        ok, name = self.lookup(req["hService"], False)
        if not ok:
            err = ERROR_INVALID_HANDLE
        elif req["dwControl"] != SERVICE_CONTROL_STOP:
            err = ERROR_CALL_NOT_IMPLEMENTED
        else:
            err = self.wine.stop_service(name)
        state = SERVICE_STOPPED
        if ok:
            qerr, qstate = self.wine.query(name)
            if not qerr:
                state = qstate
        ans["lpServiceStatus"] = self.status(state)
        ans["ErrorCode"] = err
        LOG.info("ControlService %s %d: %d", name, req["dwControl"], err)
        return ans

    def query_status(self, data):
        req = scmr.RQueryServiceStatus(data)
        ans = scmr.RQueryServiceStatusResponse()
        ok, name = self.lookup(req["hService"], False)
        err, state = self.wine.query(name) if ok else (ERROR_INVALID_HANDLE, 0)
        ans["lpServiceStatus"] = self.status(state)
        ans["ErrorCode"] = err
        return ans

    def query_config(self, data):
        req = scmr.RQueryServiceConfigW(data)
        ans = scmr.RQueryServiceConfigWResponse()
        ok, name = self.lookup(req["hService"], False)
        vals = self.wine.config(name) if ok else None
        cfg = ans["lpServiceConfig"]
        cfg["dwServiceType"] = (vals or {}).get("Type", 0) if isinstance((vals or {}).get("Type"), int) else 0
        cfg["dwStartType"] = (vals or {}).get("Start", 3) if isinstance((vals or {}).get("Start"), int) else 3
        cfg["dwErrorControl"] = (vals or {}).get("ErrorControl", 1) if isinstance((vals or {}).get("ErrorControl"), int) else 1
        cfg["lpBinaryPathName"] = (vals or {}).get("ImagePath", "") + "\x00"
        cfg["lpLoadOrderGroup"] = "\x00"
        cfg["dwTagId"] = 0
        cfg["lpDependencies"] = "\x00"
        cfg["lpServiceStartName"] = (vals or {}).get("ObjectName", "LocalSystem") + "\x00"
        cfg["lpDisplayName"] = (vals or {}).get("DisplayName", name or "") + "\x00"
        ans["pcbBytesNeeded"] = 1024
        if not ok:
            ans["ErrorCode"] = ERROR_INVALID_HANDLE
        elif vals is None:
            ans["ErrorCode"] = ERROR_SERVICE_DOES_NOT_EXIST
        else:
            ans["ErrorCode"] = ERROR_SUCCESS
        return ans

    def enum_services(self, data):
        """EnumServicesStatusW: the buffer is an array of
        ENUM_SERVICE_STATUSW whose string pointers are offsets from the
        buffer's start, the strings after the array."""
        req = scmr.REnumServicesStatusW(data)
        ans = scmr.REnumServicesStatusWResponse()
        ok, _ = self.lookup(req["hSCManager"], True)
        ans["lpResumeIndex"] = NULL
        if not ok:
            ans["lpBuffer"] = []
            ans["pcbBytesNeeded"] = 0
            ans["lpServicesReturned"] = 0
            ans["ErrorCode"] = ERROR_INVALID_HANDLE
            return ans
        entries = []
        want = req["dwServiceState"]  # 1 active, 2 inactive, 3 all
        for name, vals in self.wine.services():
            err, state = self.wine.query(name)
            if err:
                continue
            active = state != SERVICE_STOPPED
            if (active and not want & 1) or (not active and not want & 2):
                continue
            entries.append((name, vals.get("DisplayName", name), vals["Type"], state))
        head = 36 * len(entries)
        table, strings = b"", b""
        for name, display, stype, state in entries:
            n = (name + "\x00").encode("utf-16le")
            d = (display + "\x00").encode("utf-16le")
            noff = head + len(strings)
            strings += n
            doff = head + len(strings)
            strings += d
            table += noff.to_bytes(4, "little") + doff.to_bytes(4, "little")
            s = self.status(state)
            s["dwServiceType"] = stype
            table += s.getData()
        buf = table + strings
        offered = req["cbBufSize"]
        ans["pcbBytesNeeded"] = len(buf)
        if offered < len(buf):
            ans["lpBuffer"] = list(b"\x00" * offered)
            ans["lpServicesReturned"] = 0
            ans["ErrorCode"] = ERROR_MORE_DATA
        else:
            ans["lpBuffer"] = list(buf + b"\x00" * (offered - len(buf)))
            ans["lpServicesReturned"] = len(entries)
            ans["ErrorCode"] = ERROR_SUCCESS
        LOG.info("EnumServicesStatus offered %d needed %d: %d services", offered, len(buf), len(entries))
        return ans

    def delete(self, data):
        req = scmr.RDeleteService(data)
        ans = scmr.RDeleteServiceResponse()
        ok, name = self.lookup(req["hService"], False)
        ans["ErrorCode"] = self.wine.delete(name) if ok else ERROR_INVALID_HANDLE
        LOG.info("DeleteService %s: %d", name, ans["ErrorCode"])
        return ans

    def close(self, data):
        req = scmr.RCloseServiceHandle(data)
        ans = scmr.RCloseServiceHandleResponse()
        key = handle_bytes(req["hSCObject"])
        ans["hSCObject"] = rpc_handle(b"\x00" * 20)
        ans["ErrorCode"] = ERROR_SUCCESS if self.handles.pop(key, 0) != 0 else ERROR_INVALID_HANDLE
        return ans


class LSAServer(Server):
    """A minimal LSA on \\PIPE\\lsarpc: one policy handle, the machine's
    account domain."""

    def __init__(self, domain, sid):
        DCERPCServer.__init__(self)
        self.domain = domain
        self.sid = sid
        self.handles = set()
        self.addCallbacks(("12345778-1234-ABCD-EF00-0123456789AB", "0.0"), "\\PIPE\\lsarpc", {
            0: self.close,
            6: self.open_policy,
            7: self.query_info,
            44: self.open_policy2,
            46: self.query_info2,
        })

    def _open(self, ans):
        h = handle()
        self.handles.add(h)
        ans["PolicyHandle"] = h
        ans["ErrorCode"] = 0
        return ans

    # The open requests are not parsed: nothing in them matters here, and
    # impacket's classes fail on what Samba sends (no quality of service).
    def open_policy(self, data):
        return self._open(lsad.LsarOpenPolicyResponse())

    def open_policy2(self, data):
        return self._open(lsad.LsarOpenPolicy2Response())

    def _query(self, data, ans):
        # The request: a 20-byte policy handle, then the class (uint16).
        cls = int.from_bytes(data[20:22], "little") if len(data) >= 22 else 0
        info = ans["PolicyInformation"]
        sid = RPC_SID()
        sid.fromCanonical(self.sid)
        if cls == lsad.POLICY_INFORMATION_CLASS.PolicyAccountDomainInformation:
            info["tag"] = cls
            info["PolicyAccountDomainInfo"]["DomainName"] = self.domain
            info["PolicyAccountDomainInfo"]["DomainSid"] = sid
        elif cls == lsad.POLICY_INFORMATION_CLASS.PolicyPrimaryDomainInformation:
            info["tag"] = cls
            info["PolicyPrimaryDomainInfo"]["Name"] = self.domain
            info["PolicyPrimaryDomainInfo"]["Sid"] = sid
        else:
            ans["PolicyInformation"] = NULL
            ans["ErrorCode"] = 0xC0000003  # STATUS_INVALID_INFO_CLASS
            return ans
        ans["ErrorCode"] = 0
        return ans

    def query_info(self, data):
        return self._query(data, lsad.LsarQueryInformationPolicyResponse())

    def query_info2(self, data):
        return self._query(data, lsad.LsarQueryInformationPolicy2Response())

    def close(self, data):
        req = lsad.LsarClose(data)
        ans = lsad.LsarCloseResponse()
        self.handles.discard(req["ObjectHandle"])
        ans["ObjectHandle"] = b"\x00" * 20
        ans["ErrorCode"] = 0
        return ans


class _SigningChallenge(ntlm.NTLMAuthChallenge):
    """impacket 0.10's server leaves NTLMSSP_NEGOTIATE_SIGN out of its
    challenge; clients that require signing (smbclient, Samba's net,
    go-msrpc) then refuse the session. This challenge always carries it."""

    def __setitem__(self, key, value):
        if key == "flags":
            value |= ntlm.NTLMSSP_NEGOTIATE_SIGN
        super().__setitem__(key, value)


def patch_impacket(family):
    # Only the server module sees the patched challenge: a copy of the ntlm
    # module's namespace with the one class replaced.
    proxy = types.ModuleType("impacket.ntlm.winsim")
    proxy.__dict__.update(ntlm.__dict__)
    proxy.NTLMAuthChallenge = _SigningChallenge
    smbserver.ntlm = proxy
    smbserver.SMBSERVER.address_family = family

    # A tree connect to a share that does not exist fails on Windows (and
    # Samba) with STATUS_BAD_NETWORK_NAME; impacket says
    # STATUS_OBJECT_PATH_NOT_FOUND. Rewrite the status (and sign again).
    orig = smbserver.SMB2Commands.smb2TreeConnect

    def tree_connect(connId, smbServer, recvPacket):
        a, packets, err = orig(connId, smbServer, recvPacket)
        if err == STATUS_OBJECT_PATH_NOT_FOUND:
            err = STATUS_BAD_NETWORK_NAME
            for pkt in packets:
                pkt["Status"] = err
                conn = smbServer.getConnectionData(connId, checkStatus=False)
                if conn.get("SignatureEnabled"):
                    smbServer.signSMBv2(pkt, conn["SigningSessionKey"])
        return a, packets, err

    smbserver.SMB2Commands.smb2TreeConnect = staticmethod(tree_connect)

    # A failed logon: impacket answers with a session setup response (not
    # the SMB2 ERROR response Windows sends, which clients parse) and
    # marks the connection authenticated all the same. Answer as Windows
    # does, and keep the connection unauthenticated.
    orig_setup = smbserver.SMB2Commands.smb2SessionSetup

    def session_setup(connId, smbServer, recvPacket):
        cmds, packets, err = orig_setup(connId, smbServer, recvPacket)
        if err not in (STATUS_SUCCESS, STATUS_MORE_PROCESSING_REQUIRED):
            conn = smbServer.getConnectionData(connId, checkStatus=False)
            conn["Authenticated"] = False
            smbServer.setConnectionData(connId, conn)
            cmds = [smb3structs.SMB2Error()]
        return cmds, packets, err

    smbserver.SMB2Commands.smb2SessionSetup = staticmethod(session_setup)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bind", default="::", help="address to listen on (an IPv6 one, '::' by default, serves both families)")
    p.add_argument("--port", type=int, default=445)
    p.add_argument("--prefix", required=True, help="the Wine prefix (WINEPREFIX)")
    p.add_argument("--share-dir", help="the directory behind ADMIN$ (default PREFIX/drive_c/windows)")
    p.add_argument("--user", required=True)
    p.add_argument("--password-file", required=True, help="a file holding the user's password")
    p.add_argument("--name", default="WINSIM", help="the server's NetBIOS name")
    p.add_argument("--domain", default="WINSIM", help="the machine's account domain")
    p.add_argument("--no-admin-share", action="store_true", help="serve no ADMIN$ share")
    p.add_argument("--refuse-services", action="store_true", help="refuse CreateService with ERROR_ACCESS_DENIED")
    p.add_argument("--log", required=True, help="the log file")
    p.add_argument("--wine", default="/usr/lib/wine/wine64")
    p.add_argument("--wineserver", default="/usr/lib/wine/wineserver")
    p.add_argument("--ready-file", help="a file written once the server listens")
    a = p.parse_args()

    logging.basicConfig(filename=a.log, level=logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    with open(a.password_file) as f:
        password = f.read().strip()
    share = a.share_dir or os.path.join(a.prefix, "drive_c", "windows")

    wine = Wine(a.prefix, a.wine, a.wineserver, a.log)
    wine.start()

    def stop(signum, _frame):
        LOG.info("signal %d: stopping the wineserver", signum)
        try:
            wine.stop()
        finally:
            os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    family = socket.AF_INET6 if ":" in a.bind else socket.AF_INET
    patch_impacket(family)
    server = smbserver.SimpleSMBServer(listenAddress=a.bind, listenPort=a.port)
    server.setSMB2Support(True)
    server.setSMBChallenge(secrets.token_hex(8))
    server.setLogFile(a.log)
    if not a.no_admin_share:
        server.addShare("ADMIN$", share, "Remote Admin")
    # Server name and domain: impacket makes random ones; set ours.
    cfg = server._SimpleSMBServer__smbConfig
    cfg.set("global", "server_name", a.name)
    cfg.set("global", "server_domain", a.domain)
    cfg.set("global", "anonymous_logon", "False")
    srv = server._SimpleSMBServer__server
    srv.setServerConfig(cfg)
    srv.processConfigFile()
    # After the last processConfigFile: credentials added this way are
    # kept as bytes, as the NTLM check wants them (a credentials file's are
    # left as hex text).
    server.addCredential(a.user, 0, ntlm.compute_lmhash(password).hex(), ntlm.compute_nthash(password).hex())

    scm = SCMRServer(wine, a.refuse_services)
    scm.daemon = True
    lsa = LSAServer(a.domain, "S-1-5-21-2018-5-8")
    lsa.daemon = True
    server.registerNamedPipe("svcctl", ("127.0.0.1", scm.getListenPort()))
    server.registerNamedPipe("lsarpc", ("127.0.0.1", lsa.getListenPort()))
    scm.start()
    lsa.start()
    LOG.info("serving on [%s]:%d, share %s, prefix %s", a.bind, a.port,
             "none" if a.no_admin_share else share, a.prefix)
    if a.ready_file:
        with open(a.ready_file + ".tmp", "w") as f:
            f.write("%d\n" % os.getpid())
        os.rename(a.ready_file + ".tmp", a.ready_file)
    server.start()


if __name__ == "__main__":
    sys.exit(main())
