{{/*
prometheusRemoteWrite: the operator's cluster-wide default receiver (docs/metrics.md,
"From the operator"). The operator takes it as JSON (BARRAGE_REMOTE_WRITE); credentials
and TLS files are mounted from Secrets in the release namespace at barrage.remoteWriteDir,
so the JSON holds paths, never a secret, and the operator needs no right to read Secrets.
*/}}
{{- define "barrage.remoteWriteDir" -}}/etc/barrage/remote-write{{- end }}

{{/* The Secret keys to mount: a list of [name key file], in a fixed order. */}}
{{- define "barrage.remoteWriteFiles" -}}
{{- $rw := .Values.prometheusRemoteWrite | default dict }}
{{- $files := list }}
{{- range $ref := list (list "basicAuth.passwordSecret" (dig "basicAuth" "passwordSecret" dict $rw) "password")
                     (list "bearerTokenSecret" (dig "bearerTokenSecret" dict $rw) "token")
                     (list "tls.caSecret" (dig "tls" "caSecret" dict $rw) "ca.pem")
                     (list "tls.certSecret" (dig "tls" "certSecret" dict $rw) "cert.pem")
                     (list "tls.keySecret" (dig "tls" "keySecret" dict $rw) "key.pem") }}
{{- $field := index $ref 0 }}{{ $s := index $ref 1 | default dict }}
{{- if or $s.name $s.key }}
{{- if not (and $s.name $s.key) }}
{{- fail (printf "prometheusRemoteWrite.%s: give both name and key" $field) }}
{{- end }}
{{- $files = append $files (list $s.name $s.key (index $ref 2)) }}
{{- end }}
{{- end }}
{{- toJson $files }}
{{- end }}

{{/* The JSON of --remote-write, or "" when no url is set. */}}
{{- define "barrage.remoteWriteJson" -}}
{{- $rw := .Values.prometheusRemoteWrite | default dict }}
{{- if $rw.url }}
{{- $dir := include "barrage.remoteWriteDir" . }}
{{- $d := dict "url" $rw.url }}
{{- with $rw.headers }}{{ $_ := set $d "headers" . }}{{ end }}
{{- $user := dig "basicAuth" "username" "" $rw }}
{{- $password := dig "basicAuth" "passwordSecret" "name" "" $rw }}
{{- $token := dig "bearerTokenSecret" "name" "" $rw }}
{{- if and $user (not $password) }}
{{- fail "prometheusRemoteWrite.basicAuth: a username needs passwordSecret {name, key}" }}
{{- end }}
{{- if and $password (not $user) }}
{{- fail "prometheusRemoteWrite.basicAuth: passwordSecret needs a username" }}
{{- end }}
{{- if and $user $token }}
{{- fail "prometheusRemoteWrite: give either basicAuth or bearerTokenSecret, not both" }}
{{- end }}
{{- if $user }}
{{- $_ := set $d "basicAuth" (dict "username" $user "passwordFile" (printf "%s/password" $dir)) }}
{{- end }}
{{- if $token }}
{{- $_ := set $d "bearerTokenFile" (printf "%s/token" $dir) }}
{{- end }}
{{- $tls := dict }}
{{- if dig "tls" "caSecret" "name" "" $rw }}{{ $_ := set $tls "caFile" (printf "%s/ca.pem" $dir) }}{{ end }}
{{- if dig "tls" "certSecret" "name" "" $rw }}{{ $_ := set $tls "certFile" (printf "%s/cert.pem" $dir) }}{{ end }}
{{- if dig "tls" "keySecret" "name" "" $rw }}{{ $_ := set $tls "keyFile" (printf "%s/key.pem" $dir) }}{{ end }}
{{- with dig "tls" "serverName" "" $rw }}{{ $_ := set $tls "serverName" . }}{{ end }}
{{- if ne (hasKey $tls "certFile") (hasKey $tls "keyFile") }}
{{- fail "prometheusRemoteWrite.tls: certSecret and keySecret go together" }}
{{- end }}
{{- if and $tls (not (hasPrefix "https://" $rw.url)) }}
{{- fail "prometheusRemoteWrite.tls: applies to an https:// url only" }}
{{- end }}
{{- if $tls }}{{ $_ := set $d "tls" $tls }}{{ end }}
{{- with $rw.interval }}{{ $_ := set $d "interval" . }}{{ end }}
{{- with $rw.histograms }}{{ $_ := set $d "histograms" . }}{{ end }}
{{- toJson $d }}
{{- end }}
{{- end }}
