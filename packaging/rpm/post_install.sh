# logseal rpm %post: the service user and directories (sysusers/tmpfiles), then
# a daemon reload. Units are not enabled: both need certificates from `logseal pki`.
systemd-sysusers /usr/lib/sysusers.d/logseal.conf >/dev/null 2>&1 || :
systemd-tmpfiles --create /usr/lib/tmpfiles.d/logseal.conf >/dev/null 2>&1 || :
chown root:logseal /etc/logseal /etc/logseal/agent.toml /etc/logseal/collector.toml 2>/dev/null || :
chmod 0750 /etc/logseal 2>/dev/null || :
systemctl daemon-reload >/dev/null 2>&1 || :
