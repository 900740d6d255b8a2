/*
 * railpulse IoT identity: a mosquitto 2.0 plugin that makes the local broker as strict as AWS IoT
 * Core about who a connection is, and tells the rules stand-in who published each message.
 *
 * At connect (MOSQ_EVT_BASIC_AUTH; the listener runs with require_certificate and without
 * use_identity_as_username, so this plugin decides):
 *   - the client certificate's CN is the thing; the MQTT client id must equal it, as the train
 *     policy's `iot:Connect` on `client/${iot:Connection.Thing.ThingName}` demands. Another id is
 *     refused (CONNACK not authorised) before the broker looks at sessions, so it cannot take over
 *     another train's session;
 *   - a certificate whose SHA-256 fingerprint is in the deny file (certificates the registry
 *     marks INACTIVE or REVOKED, written by the IoT stand-in) is refused;
 *   - the username becomes the CN, whatever the client sent, so the ACL's %u is the thing.
 * While running (MOSQ_EVT_TICK, about every 100 ms): when the deny file changes, every client
 * whose certificate was newly denied is disconnected.
 * On every PUBLISH (MOSQ_EVT_MESSAGE): the MQTT 5 user property `railpulse-client-id` is set to
 * the publisher's client id (any such property the client sent is dropped); the topic rules'
 * clientid() reads it.
 *
 * Options (mosquitto.conf):
 *   plugin_opt_deny_file /path/denied-certs   lines "<sha256 hex of the DER certificate> <CN>"
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>
#include <mqtt_protocol.h>

#define CLIENT_ID_PROPERTY "railpulse-client-id"
#define FINGERPRINT_LEN 64
#define NAME_MAX_LEN 256
#define CHECK_INTERVAL_MS 100

struct denied {
	char fingerprint[FINGERPRINT_LEN + 1];
	char name[NAME_MAX_LEN];
};

static mosquitto_plugin_id_t *plugin_id = NULL;
static char *deny_file = NULL;
static struct denied *denied = NULL;
static size_t denied_count = 0;
static struct timespec deny_mtime = {0, 0};
static off_t deny_size = -1;
static struct timespec last_check = {0, 0};

static int is_denied(const struct denied *list, size_t count, const char *fingerprint)
{
	for(size_t i = 0; i < count; i++){
		if(strcmp(list[i].fingerprint, fingerprint) == 0) return 1;
	}
	return 0;
}

/* Read the deny file again if it changed; kick clients whose certificate is newly denied. */
static void refresh_denied(int kick)
{
	struct stat st;
	FILE *f;
	char line[FINGERPRINT_LEN + NAME_MAX_LEN + 8];
	struct denied *fresh = NULL;
	size_t count = 0, cap = 0;

	if(deny_file == NULL) return;
	if(stat(deny_file, &st) != 0){
		st.st_size = 0;
		st.st_mtim.tv_sec = 0;
		st.st_mtim.tv_nsec = 0;
	}
	if(st.st_size == deny_size && st.st_mtim.tv_sec == deny_mtime.tv_sec && st.st_mtim.tv_nsec == deny_mtime.tv_nsec){
		return;
	}
	f = fopen(deny_file, "r");
	if(f != NULL){
		while(fgets(line, sizeof(line), f) != NULL){
			char fp[FINGERPRINT_LEN + 1], name[NAME_MAX_LEN];
			if(sscanf(line, "%64s %255s", fp, name) != 2) continue;
			if(count == cap){
				size_t ncap = cap ? cap * 2 : 16;
				struct denied *grown = realloc(fresh, ncap * sizeof(*fresh));
				if(grown == NULL) break;
				fresh = grown;
				cap = ncap;
			}
			memcpy(fresh[count].fingerprint, fp, sizeof(fp));
			memcpy(fresh[count].name, name, sizeof(name));
			count++;
		}
		fclose(f);
	}
	if(kick){
		for(size_t i = 0; i < count; i++){
			if(!is_denied(denied, denied_count, fresh[i].fingerprint)){
				mosquitto_log_printf(MOSQ_LOG_NOTICE, "railpulse: certificate %s of %s is no longer active: disconnecting %s", fresh[i].fingerprint, fresh[i].name, fresh[i].name);
				/* The client id is the CN (enforced at connect). */
				mosquitto_kick_client_by_clientid(fresh[i].name, false);
			}
		}
	}
	free(denied);
	denied = fresh;
	denied_count = count;
	deny_size = st.st_size;
	deny_mtime = st.st_mtim;
	mosquitto_log_printf(MOSQ_LOG_INFO, "railpulse: %zu certificate(s) denied", denied_count);
}

static int certificate_identity(const struct mosquitto *client, char *cn, size_t cn_len, char *fingerprint)
{
	X509 *cert = mosquitto_client_certificate(client);
	X509_NAME *subject;
	const ASN1_STRING *data;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;
	int i, ok = 0;

	if(cert == NULL) return 0;
	subject = X509_get_subject_name(cert);
	i = subject ? X509_NAME_get_index_by_NID(subject, NID_commonName, -1) : -1;
	if(i >= 0){
		data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, i));
		if(data != NULL && (size_t)ASN1_STRING_length(data) < cn_len
				&& strlen((const char *)ASN1_STRING_get0_data(data)) == (size_t)ASN1_STRING_length(data)
				&& X509_digest(cert, EVP_sha256(), md, &md_len) == 1){
			memcpy(cn, ASN1_STRING_get0_data(data), (size_t)ASN1_STRING_length(data));
			cn[ASN1_STRING_length(data)] = '\0';
			for(unsigned int j = 0; j < md_len && j * 2 < FINGERPRINT_LEN; j++){
				snprintf(fingerprint + j * 2, 3, "%02x", md[j]);
			}
			ok = 1;
		}
	}
	X509_free(cert);
	return ok;
}

static int on_basic_auth(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_basic_auth *ed = event_data;
	char cn[NAME_MAX_LEN], fingerprint[FINGERPRINT_LEN + 1] = {0};
	const char *client_id = mosquitto_client_id(ed->client);
	(void)event;
	(void)userdata;

	if(!certificate_identity(ed->client, cn, sizeof(cn), fingerprint)){
		mosquitto_log_printf(MOSQ_LOG_NOTICE, "railpulse: refused %s: no usable client certificate", client_id ? client_id : "?");
		return MOSQ_ERR_AUTH;
	}
	refresh_denied(1);
	if(is_denied(denied, denied_count, fingerprint)){
		mosquitto_log_printf(MOSQ_LOG_NOTICE, "railpulse: refused %s: certificate %s is not active in the registry", cn, fingerprint);
		return MOSQ_ERR_AUTH;
	}
	if(client_id == NULL || strcmp(client_id, cn) != 0){
		mosquitto_log_printf(MOSQ_LOG_NOTICE, "railpulse: refused client id '%s' for the certificate of %s: the client id must be the thing name", client_id ? client_id : "", cn);
		return MOSQ_ERR_AUTH;
	}
	if(mosquitto_set_username(ed->client, cn) != MOSQ_ERR_SUCCESS) return MOSQ_ERR_AUTH;
	return MOSQ_ERR_SUCCESS;
}

static int on_tick(int event, void *event_data, void *userdata)
{
	struct timespec now;
	long elapsed_ms;
	(void)event;
	(void)event_data;
	(void)userdata;

	clock_gettime(CLOCK_MONOTONIC, &now);
	elapsed_ms = (now.tv_sec - last_check.tv_sec) * 1000 + (now.tv_nsec - last_check.tv_nsec) / 1000000;
	if(elapsed_ms >= CHECK_INTERVAL_MS){
		last_check = now;
		refresh_denied(1);
	}
	return MOSQ_ERR_SUCCESS;
}

/* The client's properties without its own `railpulse-client-id`, plus the real one. */
static int on_message(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_message *ed = event_data;
	const char *client_id;
	mosquitto_property *props = NULL;
	const mosquitto_property *p;
	(void)event;
	(void)userdata;

	client_id = mosquitto_client_id(ed->client);
	if(client_id == NULL || client_id[0] == '\0') return MOSQ_ERR_ACL_DENIED;

	for(p = ed->properties; p != NULL; p = mosquitto_property_next(p)){
		int id = mosquitto_property_identifier(p);
		if(id == MQTT_PROP_USER_PROPERTY){
			char *name = NULL, *value = NULL;
			if(mosquitto_property_read_string_pair(p, MQTT_PROP_USER_PROPERTY, &name, &value, false)){
				if(strcmp(name, CLIENT_ID_PROPERTY) != 0){
					mosquitto_property_add_string_pair(&props, MQTT_PROP_USER_PROPERTY, name, value);
				}
				mosquitto_free(name);
				mosquitto_free(value);
			}
		}else if(id == MQTT_PROP_CONTENT_TYPE || id == MQTT_PROP_RESPONSE_TOPIC){
			char *value = NULL;
			if(mosquitto_property_read_string(p, id, &value, false)){
				mosquitto_property_add_string(&props, id, value);
				mosquitto_free(value);
			}
		}else if(id == MQTT_PROP_PAYLOAD_FORMAT_INDICATOR){
			uint8_t value;
			if(mosquitto_property_read_byte(p, id, &value, false)){
				mosquitto_property_add_byte(&props, id, value);
			}
		}else if(id == MQTT_PROP_CORRELATION_DATA){
			void *value = NULL;
			uint16_t vlen = 0;
			if(mosquitto_property_read_binary(p, id, &value, &vlen, false)){
				mosquitto_property_add_binary(&props, id, value, vlen);
				mosquitto_free(value);
			}
		}
	}
	mosquitto_property_add_string_pair(&props, MQTT_PROP_USER_PROPERTY, CLIENT_ID_PROPERTY, client_id);
	mosquitto_property_free_all(&ed->properties);
	ed->properties = props;
	return MOSQ_ERR_SUCCESS;
}

int mosquitto_plugin_version(int supported_version_count, const int *supported_versions)
{
	for(int i = 0; i < supported_version_count; i++){
		if(supported_versions[i] == 5) return 5;
	}
	return -1;
}

int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata, struct mosquitto_opt *opts, int opt_count)
{
	int rc;
	(void)userdata;
	plugin_id = identifier;
	for(int i = 0; i < opt_count; i++){
		if(strcmp(opts[i].key, "deny_file") == 0) deny_file = strdup(opts[i].value);
	}
	refresh_denied(0);
	rc = mosquitto_callback_register(plugin_id, MOSQ_EVT_BASIC_AUTH, on_basic_auth, NULL, NULL);
	if(rc == MOSQ_ERR_SUCCESS) rc = mosquitto_callback_register(plugin_id, MOSQ_EVT_TICK, on_tick, NULL, NULL);
	if(rc == MOSQ_ERR_SUCCESS) rc = mosquitto_callback_register(plugin_id, MOSQ_EVT_MESSAGE, on_message, NULL, NULL);
	mosquitto_log_printf(MOSQ_LOG_INFO, "railpulse iot_identity: client id = certificate CN, deny file %s", deny_file ? deny_file : "(none)");
	return rc;
}

int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *opts, int opt_count)
{
	(void)userdata;
	(void)opts;
	(void)opt_count;
	mosquitto_callback_unregister(plugin_id, MOSQ_EVT_BASIC_AUTH, on_basic_auth, NULL);
	mosquitto_callback_unregister(plugin_id, MOSQ_EVT_TICK, on_tick, NULL);
	mosquitto_callback_unregister(plugin_id, MOSQ_EVT_MESSAGE, on_message, NULL);
	free(denied);
	denied = NULL;
	denied_count = 0;
	free(deny_file);
	deny_file = NULL;
	return MOSQ_ERR_SUCCESS;
}
