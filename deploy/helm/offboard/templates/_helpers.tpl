{{/* Chart name, truncated to the 63 characters a label allows. */}}
{{- define "offboard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Fully qualified app name: release-chart unless the release already contains the chart name. */}}
{{- define "offboard.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "offboard.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "offboard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "offboard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "offboard.labels" -}}
helm.sh/chart: {{ include "offboard.chart" . }}
{{ include "offboard.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: offboard
{{- end -}}

{{- define "offboard.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "offboard.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "offboard.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "offboard.catalogConfigMap" -}}
{{- default (printf "%s-catalog" (include "offboard.fullname" .)) .Values.catalog.existingConfigMap -}}
{{- end -}}

{{/*
Environment shared by every offboard process (api, worker, migrate).
*/}}
{{- define "offboard.env" -}}
{{- with .Values.secrets.ssfSigningKey.existingSecret }}
# The API publishes (JWKS) the key the worker signs Shared Signals SETs with: one Secret.
- name: OFFBOARD_SSF_SIGNING_KEY
  valueFrom:
    secretKeyRef:
      name: {{ . | quote }}
      key: {{ $.Values.secrets.ssfSigningKey.key | quote }}
{{- end }}
- name: OFFBOARD_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ required "secrets.database.existingSecret: name the Secret holding OFFBOARD_DATABASE_URL" .Values.secrets.database.existingSecret | quote }}
      key: {{ .Values.secrets.database.key | quote }}
- name: OFFBOARD_TEMPORAL_ADDRESS
  value: {{ required "temporal.address is required" .Values.temporal.address | quote }}
- name: OFFBOARD_TEMPORAL_NAMESPACE
  value: {{ .Values.temporal.namespace | quote }}
- name: OFFBOARD_TASK_QUEUE
  value: {{ .Values.temporal.taskQueue | quote }}
{{- with .Values.temporal.tls.existingSecret }}
{{- if $.Values.temporal.tls.certKey }}
- name: OFFBOARD_TEMPORAL_TLS_CERT
  value: {{ printf "/etc/offboard/temporal-tls/%s" $.Values.temporal.tls.certKey | quote }}
{{- end }}
{{- if $.Values.temporal.tls.keyKey }}
- name: OFFBOARD_TEMPORAL_TLS_KEY
  value: {{ printf "/etc/offboard/temporal-tls/%s" $.Values.temporal.tls.keyKey | quote }}
{{- end }}
{{- if $.Values.temporal.tls.caKey }}
- name: OFFBOARD_TEMPORAL_TLS_CA
  value: {{ printf "/etc/offboard/temporal-tls/%s" $.Values.temporal.tls.caKey | quote }}
{{- end }}
{{- end }}
{{- with .Values.temporal.apiKey.existingSecret }}
- name: OFFBOARD_TEMPORAL_API_KEY
  valueFrom:
    secretKeyRef:
      name: {{ . | quote }}
      key: {{ $.Values.temporal.apiKey.key | quote }}
{{- end }}
- name: OFFBOARD_PUBLIC_URL
  value: {{ .Values.publicUrl | quote }}
- name: OFFBOARD_LOG_FORMAT
  value: {{ .Values.logFormat | quote }}
- name: OFFBOARD_DATA_DIR
  value: {{ .Values.dataDir.path | quote }}
- name: OFFBOARD_CATALOG
  value: /etc/offboard/catalog/apps.yaml
- name: OFFBOARD_BURST_THRESHOLD
  value: {{ .Values.burstGuard.threshold | quote }}
- name: OFFBOARD_BURST_WINDOW_MINUTES
  value: {{ .Values.burstGuard.windowMinutes | quote }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Volumes shared by api and worker pods. */}}
{{- define "offboard.volumes" -}}
- name: tmp
  emptyDir: {}
- name: data
{{- if .Values.dataDir.existingClaim }}
  persistentVolumeClaim:
    claimName: {{ .Values.dataDir.existingClaim | quote }}
{{- else }}
  emptyDir: {}
{{- end }}
- name: catalog
  configMap:
    name: {{ include "offboard.catalogConfigMap" . | quote }}
    items:
      - key: apps.yaml
        path: apps.yaml
{{- with .Values.temporal.tls.existingSecret }}
- name: temporal-tls
  secret:
    secretName: {{ . | quote }}
    defaultMode: 0440
{{- end }}
{{- end -}}

{{- define "offboard.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
- name: data
  mountPath: {{ .Values.dataDir.path | quote }}
- name: catalog
  mountPath: /etc/offboard/catalog
  readOnly: true
{{- if .Values.temporal.tls.existingSecret }}
- name: temporal-tls
  mountPath: /etc/offboard/temporal-tls
  readOnly: true
{{- end }}
{{- end -}}

{{/* Pod-level fields shared by the api and worker Deployments. */}}
{{- define "offboard.podCommon" -}}
serviceAccountName: {{ include "offboard.serviceAccountName" . }}
automountServiceAccountToken: {{ .Values.serviceAccount.automountToken }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Roll pods when the rendered catalog changes (env from Secrets is read at start only). */}}
{{- define "offboard.podAnnotations" -}}
{{- if not .Values.catalog.existingConfigMap }}
checksum/catalog: {{ .Values.catalog.content | sha256sum }}
{{- end }}
{{- with .Values.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end -}}
