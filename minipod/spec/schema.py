"""The Kubernetes v1 Pod, ConfigMap and Secret field sets, as tables.

Every field Kubernetes accepts is listed, so that anything else is an
"unknown field" error. Fields minipod cannot honour are ``Unsupported``
(an error); fields that mean nothing on one host are ``Ignored`` (a warning
that says why). Rules that involve several objects of a pod (names that must
match, references to ConfigMaps) live in ``podchecks``.
"""

from __future__ import annotations

from . import names, rules, sysctls
from .fields import (AnyValue, Bool, FreeForm, Ignored, Int, IntOrStr, ListOf, MapOf, Obj, Quantity,
                     Str, Unsupported, at_least, file_mode, in_range, non_empty, non_negative_quantity,
                     one_of)

INT32_MAX = 2**31 - 1
PORT = in_range(1, 65535)
UID = in_range(0, INT32_MAX)
STRINGS = ListOf(Str())

NO_SCHEDULER = "minipod runs every pod on this host, there is no scheduler"
NO_API_SERVER = "minipod has no API server, so there is no service account token to mount"
SERVER_SET = "set by the API server, not by a manifest"
NO_CONTROLLERS = "there are no controllers on a single host"

# Valid Kubernetes that minipod will honour but does not yet: a warning says
# so, rather than silence that would look like it worked.
NOT_YET = "not implemented by minipod yet"

# -- ObjectMeta ----------------------------------------------------------------

OBJECT_META = Obj({
    "name": Str(names.dns_subdomain_error),
    "generateName": Ignored(Str(), "minipod needs metadata.name"),
    "namespace": Str(names.dns_label_error),
    "labels": MapOf(Str(names.label_value_error), key_check=names.qualified_name_error),
    "annotations": MapOf(Str(), key_check=names.qualified_name_error, check=rules.annotations_size),
    "uid": Ignored(AnyValue(), SERVER_SET),
    "resourceVersion": Ignored(AnyValue(), SERVER_SET),
    "generation": Ignored(AnyValue(), SERVER_SET),
    "creationTimestamp": Ignored(AnyValue(), SERVER_SET),
    "deletionTimestamp": Ignored(AnyValue(), SERVER_SET),
    "deletionGracePeriodSeconds": Ignored(AnyValue(), SERVER_SET),
    "selfLink": Ignored(AnyValue(), SERVER_SET),
    "managedFields": Ignored(AnyValue(), SERVER_SET),
    "ownerReferences": Ignored(ListOf(FreeForm()), NO_CONTROLLERS),
    "finalizers": Ignored(STRINGS, NO_CONTROLLERS),
}, required=("name",))

# -- env, envFrom, downward API --------------------------------------------------

ENV_FIELD_PATHS = (
    "metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName", "spec.serviceAccountName",
    "status.podIP", "status.podIPs", "status.hostIP", "status.hostIPs",
)
VOLUME_FIELD_PATHS = ("metadata.name", "metadata.namespace", "metadata.uid", "metadata.labels",
                      "metadata.annotations")


def _field_ref(paths: tuple) -> Obj:
    return Obj({
        "apiVersion": Str(one_of("v1")),
        "fieldPath": Str(rules.field_path(paths)),
    }, required=("fieldPath",))


RESOURCE_FIELD_REF = Obj({
    "containerName": Str(),
    "resource": Str(rules.resource_field),
    "divisor": Quantity(),
}, required=("resource",), check=rules.divisor_matches_resource)

KEY_SELECTOR = Obj({"name": Str(non_empty), "key": Str(names.config_key_error), "optional": Bool()},
                   required=("name", "key"))
ENV_VAR = Obj({
    "name": Str(names.env_var_name_error),
    "value": Str(),
    "valueFrom": Obj({
        "fieldRef": _field_ref(ENV_FIELD_PATHS),
        "resourceFieldRef": RESOURCE_FIELD_REF,
        "configMapKeyRef": KEY_SELECTOR,
        "secretKeyRef": KEY_SELECTOR,
        "fileKeyRef": Unsupported("env from files in volumes is an alpha Kubernetes feature"),
    }, one_of=("fieldRef", "resourceFieldRef", "configMapKeyRef", "secretKeyRef", "fileKeyRef"),
        need_one=True),
}, required=("name",), check=rules.value_or_value_from)

OPTIONAL_REF = Obj({"name": Str(non_empty), "optional": Bool()}, required=("name",))
ENV_FROM = Obj({
    "prefix": Str(names.env_var_name_error),
    "configMapRef": OPTIONAL_REF,
    "secretRef": OPTIONAL_REF,
}, one_of=("configMapRef", "secretRef"), need_one=True)

# -- resources ---------------------------------------------------------------------

RESOURCE_LIST = MapOf(Quantity(non_negative_quantity), key_check=rules.resource_name)
RESOURCES = Obj({
    "limits": RESOURCE_LIST,
    "requests": RESOURCE_LIST,
    "claims": Ignored(ListOf(Obj({"name": Str(non_empty), "request": Str()}, required=("name",))),
                      "dynamic resource allocation needs a cluster"),
}, check=rules.resources)

# -- probes and lifecycle ----------------------------------------------------------

EXEC_ACTION = Obj({"command": ListOf(Str(), non_empty="required: the command to run")},
                  required=("command",))
HTTP_GET = Obj({
    "path": Str(),
    "port": IntOrStr(rules.port_number_or_name),
    "host": Str(),
    "scheme": Str(one_of("HTTP", "HTTPS")),
    "httpHeaders": ListOf(Obj({"name": Str(names.http_header_name_error), "value": Str()},
                              required=("name",))),
}, required=("port",))
TCP_SOCKET = Obj({"port": IntOrStr(rules.port_number_or_name), "host": Str()}, required=("port",))
GRPC = Obj({"port": Int(PORT), "service": Str()}, required=("port",))

PROBE_HANDLERS = ("exec", "httpGet", "tcpSocket", "grpc")
PROBE = Obj({
    "exec": EXEC_ACTION,
    "httpGet": HTTP_GET,
    "tcpSocket": TCP_SOCKET,
    "grpc": GRPC,
    "initialDelaySeconds": Int(at_least(0)),
    "timeoutSeconds": Int(at_least(1)),
    "periodSeconds": Int(at_least(1)),
    "successThreshold": Int(at_least(1)),
    "failureThreshold": Int(at_least(1)),
    "terminationGracePeriodSeconds": Int(at_least(1)),
}, one_of=PROBE_HANDLERS, need_one=True)

LIFECYCLE_HANDLER = Obj({
    "exec": EXEC_ACTION,
    "httpGet": HTTP_GET,
    "tcpSocket": Ignored(TCP_SOCKET, "a tcpSocket lifecycle handler does nothing, in Kubernetes too"),
    "sleep": Obj({"seconds": Int(at_least(0))}, required=("seconds",)),
}, one_of=("exec", "httpGet", "tcpSocket", "sleep"), need_one=True)
LIFECYCLE = Obj({
    "postStart": LIFECYCLE_HANDLER,
    "preStop": LIFECYCLE_HANDLER,
    "stopSignal": Str(rules.signal_name),
})

# -- security ------------------------------------------------------------------------

SECCOMP_PROFILE = Obj({
    "type": Str(one_of("RuntimeDefault", "Unconfined", "Localhost")),
    "localhostProfile": Str(names.relative_path_error),
}, required=("type",), check=rules.seccomp_profile)
APPARMOR_PROFILE = Ignored(Obj({
    "type": Str(one_of("RuntimeDefault", "Unconfined", "Localhost")),
    "localhostProfile": Str(),
}, required=("type",), check=rules.localhost_profile), "minipod does not apply AppArmor profiles")
SELINUX_OPTIONS = Ignored(Obj({"user": Str(), "role": Str(), "type": Str(), "level": Str()}),
                          "minipod does not apply SELinux labels")
WINDOWS_OPTIONS = Ignored(Obj({
    "gmsaCredentialSpecName": Str(), "gmsaCredentialSpec": Str(), "runAsUserName": Str(),
    "hostProcess": Bool(),
}), "Windows options do not apply to Linux containers")

CAPABILITY_LIST = ListOf(Str(names.capability_error))
SECURITY_CONTEXT = Obj({
    "capabilities": Obj({"add": CAPABILITY_LIST, "drop": CAPABILITY_LIST}),
    "privileged": Bool(),
    "seLinuxOptions": SELINUX_OPTIONS,
    "windowsOptions": WINDOWS_OPTIONS,
    "runAsUser": Int(UID),
    "runAsGroup": Int(UID),
    "runAsNonRoot": Bool(),
    "readOnlyRootFilesystem": Bool(),
    "allowPrivilegeEscalation": Bool(),
    "procMount": Str(one_of("Default", "Unmasked"), rules.default_proc_mount),
    "seccompProfile": SECCOMP_PROFILE,
    "appArmorProfile": APPARMOR_PROFILE,
}, check=rules.privilege_escalation)

SYSCTL = Obj({"name": Str(names.sysctl_name_error, sysctls.not_namespaced_error), "value": Str()},
             required=("name", "value"))
POD_SECURITY_CONTEXT = Obj({
    "seLinuxOptions": SELINUX_OPTIONS,
    "windowsOptions": WINDOWS_OPTIONS,
    "runAsUser": Int(UID),
    "runAsGroup": Int(UID),
    "runAsNonRoot": Bool(),
    "supplementalGroups": ListOf(Int(UID)),
    "supplementalGroupsPolicy": Str(one_of("Merge", "Strict")),
    "fsGroup": Int(UID),
    "fsGroupChangePolicy": Str(one_of("OnRootMismatch", "Always")),
    "sysctls": ListOf(SYSCTL),
    "seccompProfile": SECCOMP_PROFILE,
    "appArmorProfile": APPARMOR_PROFILE,
    "seLinuxChangePolicy": Str(one_of("MountOption", "Recursive")),
}, check=rules.unique_sysctls)

# -- containers ---------------------------------------------------------------------

CONTAINER_PORT = Obj({
    "name": Str(names.port_name_error),
    "hostPort": Int(in_range(0, 65535)),
    "containerPort": Int(PORT),
    "protocol": Str(one_of("TCP", "UDP", "SCTP")),
    "hostIP": Str(names.ip_address_error),
}, required=("containerPort",))

VOLUME_MOUNT = Obj({
    "name": Str(non_empty),
    "readOnly": Bool(),
    "recursiveReadOnly": Ignored(Str(one_of("Disabled", "IfPossible", "Enabled")), NOT_YET,
                                 harmless=("Disabled",)),
    "mountPath": Str(rules.mount_path),
    "subPath": Str(names.relative_path_error),
    "mountPropagation": Ignored(Str(one_of("None", "HostToContainer", "Bidirectional")), NOT_YET,
                                harmless=("None",)),
    "subPathExpr": Str(names.relative_path_error),
}, required=("name", "mountPath"), check=rules.volume_mount)

CONTAINER_FIELDS = {
    "name": Str(names.dns_label_error),
    "image": Str(non_empty),
    "command": STRINGS,
    "args": STRINGS,
    "workingDir": Str(names.absolute_path_error),
    "ports": ListOf(CONTAINER_PORT),
    "envFrom": ListOf(ENV_FROM),
    "env": ListOf(ENV_VAR),
    "resources": RESOURCES,
    "resizePolicy": Ignored(ListOf(Obj({
        "resourceName": Str(non_empty),
        "restartPolicy": Str(one_of("NotRequired", "RestartContainer")),
    }, required=("resourceName", "restartPolicy"))), "minipod does not resize containers in place"),
    "restartPolicy": Str(one_of("Always")),
    "volumeMounts": ListOf(VOLUME_MOUNT),
    "volumeDevices": Unsupported("raw block devices come from persistentVolumeClaim volumes"),
    "livenessProbe": PROBE,
    "readinessProbe": PROBE,
    "startupProbe": PROBE,
    "lifecycle": LIFECYCLE,
    "terminationMessagePath": Str(names.absolute_path_error),
    "terminationMessagePolicy": Str(one_of("File", "FallbackToLogsOnError")),
    "imagePullPolicy": Str(one_of("Always", "IfNotPresent", "Never")),
    "securityContext": SECURITY_CONTEXT,
    "stdin": Ignored(Bool(), "minipod does not attach to a container's standard input yet",
                     harmless=(False,)),
    "stdinOnce": Ignored(Bool(), "minipod does not attach to a container's standard input yet",
                         harmless=(False,)),
    "tty": Bool(),
}
CONTAINER = Obj(CONTAINER_FIELDS, required=("name", "image"), check=rules.container)
EPHEMERAL_CONTAINER = CONTAINER.extend({"targetContainerName": Str()})

# -- volumes ---------------------------------------------------------------------------

KEY_TO_PATH = Obj({
    "key": Str(names.config_key_error),
    "path": Str(rules.item_path),
    "mode": Int(file_mode),
}, required=("key", "path"))
DOWNWARD_API_FILE = Obj({
    "path": Str(rules.item_path),
    "fieldRef": _field_ref(VOLUME_FIELD_PATHS),
    "resourceFieldRef": RESOURCE_FIELD_REF,
    "mode": Int(file_mode),
}, required=("path",), one_of=("fieldRef", "resourceFieldRef"), need_one=True)

CONFIG_MAP_PROJECTION = Obj({"name": Str(non_empty), "items": ListOf(KEY_TO_PATH), "optional": Bool()},
                            required=("name",))
SECRET_PROJECTION = CONFIG_MAP_PROJECTION
DOWNWARD_API_PROJECTION = Obj({"items": ListOf(DOWNWARD_API_FILE)})

PROJECTION_SOURCES = ("configMap", "secret", "downwardAPI", "serviceAccountToken", "clusterTrustBundle",
                      "podCertificate")
PROJECTED = Obj({
    "sources": ListOf(Obj({
        "configMap": CONFIG_MAP_PROJECTION,
        "secret": SECRET_PROJECTION,
        "downwardAPI": DOWNWARD_API_PROJECTION,
        "serviceAccountToken": Unsupported(NO_API_SERVER),
        "clusterTrustBundle": Unsupported("cluster trust bundles live in a cluster's API server"),
        "podCertificate": Unsupported("pod certificates are issued by a cluster"),
    }, one_of=PROJECTION_SOURCES, need_one=True)),
    "defaultMode": Int(file_mode),
})

SUPPORTED_VOLUME_SOURCES = {
    "emptyDir": Obj({
        "medium": Str(one_of("", "Memory")),
        "sizeLimit": Quantity(non_negative_quantity),
    }),
    "hostPath": Obj({
        "path": Str(names.absolute_path_error),
        "type": Str(one_of("", "DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket",
                           "CharDevice", "BlockDevice")),
    }, required=("path",)),
    "configMap": Obj({
        "name": Str(non_empty),
        "items": ListOf(KEY_TO_PATH),
        "defaultMode": Int(file_mode),
        "optional": Bool(),
    }, required=("name",)),
    "secret": Obj({
        "secretName": Str(non_empty),
        "items": ListOf(KEY_TO_PATH),
        "defaultMode": Int(file_mode),
        "optional": Bool(),
    }, required=("secretName",)),
    "downwardAPI": Obj({"items": ListOf(DOWNWARD_API_FILE), "defaultMode": Int(file_mode)}),
    "projected": PROJECTED,
}
UNSUPPORTED_VOLUME_SOURCES = (
    "persistentVolumeClaim", "ephemeral", "image", "nfs", "iscsi", "csi", "gitRepo", "glusterfs", "rbd",
    "cephfs", "cinder", "flexVolume", "flocker", "fc", "azureFile", "azureDisk", "vsphereVolume",
    "quobyte", "photonPersistentDisk", "portworxVolume", "scaleIO", "storageos", "gcePersistentDisk",
    "awsElasticBlockStore",
)
_UNSUPPORTED_VOLUME = Unsupported("minipod volumes are " + ", ".join(SUPPORTED_VOLUME_SOURCES))
VOLUME_SOURCES = tuple(SUPPORTED_VOLUME_SOURCES) + UNSUPPORTED_VOLUME_SOURCES
VOLUME = Obj({
    "name": Str(names.dns_label_error),
    **SUPPORTED_VOLUME_SOURCES,
    **{source: _UNSUPPORTED_VOLUME for source in UNSUPPORTED_VOLUME_SOURCES},
}, required=("name",), one_of=VOLUME_SOURCES, what="volume source")

# -- pod spec ----------------------------------------------------------------------------

TOLERATION = Obj({
    "key": Str(), "operator": Str(one_of("Exists", "Equal")), "value": Str(),
    "effect": Str(one_of("", "NoSchedule", "PreferNoSchedule", "NoExecute")),
    "tolerationSeconds": Int(),
})
DNS_CONFIG = Obj({
    "nameservers": ListOf(Str(names.ip_address_error), max_items=3),
    "searches": ListOf(Str(non_empty), max_items=32),
    "options": ListOf(Obj({"name": Str(non_empty), "value": Str()}, required=("name",))),
})
HOST_ALIAS = Obj({"ip": Str(names.ip_address_error), "hostnames": STRINGS}, required=("ip",))

POD_SPEC = Obj({
    "volumes": ListOf(VOLUME),
    "initContainers": ListOf(CONTAINER),
    "containers": ListOf(CONTAINER, non_empty="required: at least one container"),
    "ephemeralContainers": ListOf(EPHEMERAL_CONTAINER),
    "restartPolicy": Str(one_of("Always", "OnFailure", "Never")),
    "terminationGracePeriodSeconds": Int(at_least(0)),
    "activeDeadlineSeconds": Int(in_range(1, 2**63 - 1)),
    "dnsPolicy": Str(one_of("ClusterFirst", "ClusterFirstWithHostNet", "Default", "None")),
    "nodeSelector": Ignored(MapOf(Str(), key_check=names.qualified_name_error), NO_SCHEDULER),
    "serviceAccountName": Ignored(Str(names.dns_subdomain_error), NO_API_SERVER, harmless=("default",)),
    "serviceAccount": Ignored(Str(), NO_API_SERVER, harmless=("default",)),
    "automountServiceAccountToken": Ignored(Bool(), NO_API_SERVER, harmless=(False,)),
    "nodeName": Ignored(Str(), NO_SCHEDULER),
    "hostNetwork": Bool(),
    "hostPID": Bool(),
    "hostIPC": Bool(),
    "shareProcessNamespace": Bool(),
    "securityContext": POD_SECURITY_CONTEXT,
    "imagePullSecrets": ListOf(Obj({"name": Str(non_empty)}, required=("name",))),
    "hostname": Str(names.dns_label_error),
    "subdomain": Str(names.dns_label_error),
    "affinity": Ignored(FreeForm(), NO_SCHEDULER),
    "schedulerName": Ignored(Str(), NO_SCHEDULER, harmless=("default-scheduler",)),
    "tolerations": Ignored(ListOf(TOLERATION), "a single host has no taints to tolerate"),
    "hostAliases": ListOf(HOST_ALIAS),
    "priorityClassName": Ignored(Str(), "minipod does not schedule or preempt pods by priority"),
    "priority": Ignored(Int(), "minipod does not schedule or preempt pods by priority", harmless=(0,)),
    "dnsConfig": DNS_CONFIG,
    "readinessGates": Ignored(ListOf(Obj({"conditionType": Str(non_empty)}, required=("conditionType",))),
                              "no controller sets extra pod conditions; readiness comes from the containers"),
    "runtimeClassName": Ignored(Str(names.dns_subdomain_error), "minipod is the only runtime"),
    "enableServiceLinks": Bool(),
    "preemptionPolicy": Ignored(Str(one_of("PreemptLowerPriority", "Never")),
                                "minipod does not preempt pods", harmless=("PreemptLowerPriority",)),
    "overhead": Ignored(MapOf(Quantity(non_negative_quantity)), "pod overhead is a runtime-class setting"),
    "topologySpreadConstraints": Ignored(ListOf(FreeForm()), NO_SCHEDULER),
    "setHostnameAsFQDN": Bool(),
    "os": Obj({"name": Str(rules.linux_only)}, required=("name",)),
    "hostUsers": Bool(rules.host_users),
    "schedulingGates": Ignored(ListOf(Obj({"name": Str(non_empty)}, required=("name",))), NO_SCHEDULER),
    "resourceClaims": Ignored(ListOf(FreeForm()), "dynamic resource allocation needs a cluster"),
    "resources": Ignored(RESOURCES, "pod-level resources are not enforced yet: set them per container"),
}, required=("containers",))

POD = Obj({
    "apiVersion": Str(),
    "kind": Str(),
    "metadata": OBJECT_META,
    "spec": POD_SPEC,
    "status": Ignored(FreeForm(), "a pod's status is reported by minipod"),
}, required=("spec",))

# -- ConfigMap and Secret --------------------------------------------------------------------

CONFIG_MAP = Obj({
    "apiVersion": Str(),
    "kind": Str(),
    "metadata": OBJECT_META,
    "data": MapOf(Str(), key_check=names.config_key_error),
    "binaryData": MapOf(Str(rules.base64_text), key_check=names.config_key_error),
    "immutable": Bool(),
}, check=rules.config_map)

SECRET = Obj({
    "apiVersion": Str(),
    "kind": Str(),
    "metadata": OBJECT_META,
    "data": MapOf(Str(rules.base64_text), key_check=names.config_key_error),
    "stringData": MapOf(Str(), key_check=names.config_key_error),
    "type": Str(non_empty),
    "immutable": Bool(),
}, check=rules.secret)
