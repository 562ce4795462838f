{{/*
The load shedder sidecar (overload.*): HAProxy in front of Triton's gRPC port, with the
configuration that `tdeploy serve` runs locally. These two templates render the same text as
triton_deploy.runtime.shedder.render_config and sidecar_script; tests/charts/test_chart_shedder.py
compares them for many values, so change both together.
*/}}

{{/*
haproxy.cfg of a color's shedder: listens on ports.grpc, forwards to Triton on
overload.tritonGrpcPort (loopback), exporter and readiness on overload.metricsPort.
Takes the color's values ($v).
*/}}
{{- define "triton-deploy.shedderConfig" -}}
{{- $v := . }}
{{- $o := $v.overload }}
{{- $inflight := int $o.maxInflight }}
{{- $queued := int $o.maxQueued }}
{{- $age := int $v.triton.grpc.maxConnectionAgeMs }}
{{- $hardStop := add (int $v.triton.grpc.maxConnectionAgeGraceMs) (int $o.queueTimeoutMs) -}}
# tdeploy load shedder: at most {{ $inflight }} requests inside Triton, {{ $queued }} queued here
global
    maxconn {{ max 4096 (mul 4 (add $inflight $queued)) }}
    # a gRPC client multiplexes its calls on one connection: let it
    tune.h2.max-concurrent-streams 4096
{{- if gt $age 0 }}
    # reloaded every max connection age: the old process says GOAWAY to its clients
    # (spread over {{ max (div $age 10) 1 }} ms) and ends once their calls are done, at most {{ $hardStop }} ms
    close-spread-time {{ max (div $age 10) 1 }}ms
    hard-stop-after {{ $hardStop }}ms
{{- end }}

defaults
    mode http
    timeout connect 5s
    # gRPC connections are long-lived and may stay idle between calls
    timeout client 1h
    timeout server 1h
    timeout http-keep-alive 1h
    timeout queue {{ int $o.queueTimeoutMs }}ms

frontend grpc
    bind 0.0.0.0:{{ int $v.ports.grpc }} proto h2
    # read the whole (small) request before answering it: an answer sent while the client is
    # still uploading would be followed by a stream reset, which gRPC reports as CANCELLED
    option http-buffer-request
    # the queue is full: answer now (gRPC UNAVAILABLE) instead of letting the request wait;
    # counted in haproxy_frontend_intercepted_requests_total{proxy="grpc"}
    http-request return status 200 hdr grpc-status 14 hdr grpc-message "server overloaded: queue full, retry with backoff" if { queue(triton) ge {{ $queued }} }
    default_backend triton

backend triton
    server triton 127.0.0.1:{{ int $o.tritonGrpcPort }} proto h2 maxconn {{ $inflight }} check inter 1s fall 2 rise 1

frontend stats
    bind 0.0.0.0:{{ int $o.metricsPort }}
    # readiness: 503 while Triton's gRPC port refuses connections
    monitor-uri /ready
    monitor fail if { nbsrv(triton) lt 1 }
    # Prometheus: requests (haproxy_frontend_http_requests_total), shed answers
    # (haproxy_frontend_intercepted_requests_total), queue (haproxy_backend_current_queue)
    http-request use-service prometheus-exporter if { path /metrics }
{{ end }}

{{/*
The sidecar's command, run by sh: HAProxy in master-worker mode, reloaded every max
connection age so that every client gets a GOAWAY and reconnects through the Service (HAProxy
has no max connection age of its own). Takes the color's values ($v).
*/}}
{{- define "triton-deploy.shedderScript" -}}
{{- $age := int .triton.grpc.maxConnectionAgeMs -}}
haproxy -W -db -f /usr/local/etc/haproxy/haproxy.cfg &
master=$!
trap 'kill -USR1 "$master" 2>/dev/null; wait "$master"; exit 0' TERM INT USR1
while kill -0 "$master" 2>/dev/null; do
{{- if gt $age 0 }}
  sleep {{ include "triton-deploy.msAsSeconds" $age }} & wait $!
  kill -USR2 "$master" 2>/dev/null
{{- else }}
  sleep 3600 & wait $!
{{- end }}
done
wait "$master"
{{ end }}

{{/*
Milliseconds as seconds the way Python's "%g" writes them: 30000 -> 30, 1500 -> 1.5.
*/}}
{{- define "triton-deploy.msAsSeconds" -}}
{{- $ms := int . }}
{{- if eq (mod $ms 1000) 0 }}{{ div $ms 1000 }}{{ else }}{{ trimSuffix "0" (trimSuffix "0" (printf "%d.%03d" (div $ms 1000) (mod $ms 1000))) }}{{ end }}
{{- end }}

{{/*
Seconds a stopping shedder may still hold requests after it stops accepting: the longest
queued request's wait plus the grace its calls get (hard-stop-after). Takes $v.
*/}}
{{- define "triton-deploy.shedderDrainSeconds" -}}
{{- $grace := ternary (int .triton.grpc.maxConnectionAgeGraceMs) 0 (gt (int .triton.grpc.maxConnectionAgeMs) 0) }}
{{- div (add $grace (int .overload.queueTimeoutMs) 999) 1000 }}
{{- end }}

{{/*
Name of a color's shedder ConfigMap: (dict "root" $ "color" "blue").
*/}}
{{- define "triton-deploy.shedderName" -}}
{{- printf "%s-%s-shedder" (include "triton-deploy.fullname" .root) .color | trunc 63 | trimSuffix "-" }}
{{- end }}
