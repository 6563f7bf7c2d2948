/** The systemd --user unit that runs the daemon in the person's graphical session. */
export function systemdUserUnit(o: { node: string; bin: string; stateDir: string; idleSeconds: number }): string {
  const q = (s: string): string => (/^[A-Za-z0-9_./:-]+$/.test(s) ? s : `"${s.replace(/(["\\])/g, "\\$1")}"`);
  return [
    "[Unit]",
    "Description=Tacit federated-learning daemon (consent-based capture of abstract actions)",
    "After=graphical-session.target",
    "PartOf=graphical-session.target",
    "",
    "[Service]",
    "Type=simple",
    `ExecStart=${q(o.node)} ${q(o.bin)} client start --state-dir ${q(o.stateDir)} --idle-seconds ${o.idleSeconds}`,
    // Capture needs the X display of the session; training runs on a low-priority thread already.
    "PassEnvironment=DISPLAY XAUTHORITY",
    "Nice=5",
    "Restart=on-failure",
    "RestartSec=10",
    "NoNewPrivileges=true",
    "PrivateTmp=true",
    "",
    "[Install]",
    "WantedBy=graphical-session.target",
    "",
  ].join("\n");
}
