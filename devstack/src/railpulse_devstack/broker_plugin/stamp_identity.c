/*
 * railpulse identity stamp: a mosquitto 2.0 plugin for the local IoT Core stand-in.
 *
 * mosquitto does not tell subscribers who published a message. On a shared topic such as
 * `iot/sensors` the IoT rules stand-in must know the publisher's authenticated identity (the
 * certificate CN, which `use_identity_as_username true` makes the username), so that ingest can
 * detect a payload that claims to be another device.
 *
 * For every PUBLISH whose topic equals one of the configured shared topics, this plugin
 *   - rewrites the topic to `<topic>/<username>` (visible to MQTT 3.1.1 and 5 subscribers), and
 *   - adds the MQTT 5 user property `railpulse-principal: <username>`,
 * dropping any `railpulse-principal` user property the client sent itself.
 * A device cannot forge the rewritten form: the ACL only lets it write `<topic>/%u`.
 *
 * Options (mosquitto.conf):
 *   plugin_opt_topics iot/sensors,other/shared    (default: iot/sensors)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>
#include <mqtt_protocol.h>

#define MAX_TOPICS 16
#define PRINCIPAL_PROPERTY "railpulse-principal"

static mosquitto_plugin_id_t *plugin_id = NULL;
static char *topics[MAX_TOPICS];
static int topic_count = 0;

static int is_shared_topic(const char *topic)
{
	for(int i = 0; i < topic_count; i++){
		if(strcmp(topic, topics[i]) == 0) return 1;
	}
	return 0;
}

static mosquitto_property *without_principal(const mosquitto_property *props)
{
	mosquitto_property *out = NULL;
	const mosquitto_property *p = props;
	for(; p != NULL; p = mosquitto_property_next(p)){
		int id = mosquitto_property_identifier(p);
		if(id == MQTT_PROP_USER_PROPERTY){
			char *name = NULL, *value = NULL;
			if(mosquitto_property_read_string_pair(p, MQTT_PROP_USER_PROPERTY, &name, &value, false)){
				int drop = strcmp(name, PRINCIPAL_PROPERTY) == 0;
				if(!drop) mosquitto_property_add_string_pair(&out, MQTT_PROP_USER_PROPERTY, name, value);
				mosquitto_free(name);
				mosquitto_free(value);
			}
		}
	}
	return out;
}

static int on_message(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_message *ed = event_data;
	const char *username;
	char *stamped;
	size_t len;
	mosquitto_property *props;
	const mosquitto_property *p;
	(void)event;
	(void)userdata;

	if(ed->topic == NULL || !is_shared_topic(ed->topic)) return MOSQ_ERR_SUCCESS;
	username = mosquitto_client_username(ed->client);
	if(username == NULL || username[0] == '\0' || strchr(username, '/') || strchr(username, '+') || strchr(username, '#')){
		return MOSQ_ERR_ACL_DENIED;
	}

	len = strlen(ed->topic) + 1 + strlen(username) + 1;
	stamped = mosquitto_malloc(len);
	if(stamped == NULL) return MOSQ_ERR_NOMEM;
	snprintf(stamped, len, "%s/%s", ed->topic, username);
	mosquitto_free(ed->topic);
	ed->topic = stamped;

	/* Keep the client's other properties (user properties only are rebuilt; others pass on). */
	props = without_principal(ed->properties);
	for(p = ed->properties; p != NULL; p = mosquitto_property_next(p)){
		int id = mosquitto_property_identifier(p);
		if(id == MQTT_PROP_CONTENT_TYPE || id == MQTT_PROP_RESPONSE_TOPIC){
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
	mosquitto_property_add_string_pair(&props, MQTT_PROP_USER_PROPERTY, PRINCIPAL_PROPERTY, username);
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

static void add_topics(const char *csv)
{
	char *copy = strdup(csv);
	char *save = NULL;
	for(char *tok = strtok_r(copy, ",", &save); tok != NULL && topic_count < MAX_TOPICS; tok = strtok_r(NULL, ",", &save)){
		while(*tok == ' ') tok++;
		if(*tok != '\0') topics[topic_count++] = strdup(tok);
	}
	free(copy);
}

int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata, struct mosquitto_opt *opts, int opt_count)
{
	(void)userdata;
	plugin_id = identifier;
	for(int i = 0; i < opt_count; i++){
		if(strcmp(opts[i].key, "topics") == 0) add_topics(opts[i].value);
	}
	if(topic_count == 0) add_topics("iot/sensors");
	mosquitto_log_printf(MOSQ_LOG_INFO, "railpulse stamp_identity: stamping %d shared topic(s)", topic_count);
	return mosquitto_callback_register(plugin_id, MOSQ_EVT_MESSAGE, on_message, NULL, NULL);
}

int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *opts, int opt_count)
{
	(void)userdata;
	(void)opts;
	(void)opt_count;
	for(int i = 0; i < topic_count; i++) free(topics[i]);
	topic_count = 0;
	return mosquitto_callback_unregister(plugin_id, MOSQ_EVT_MESSAGE, on_message, NULL);
}
