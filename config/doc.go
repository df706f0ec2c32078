// Package config loads and validates esmd's YAML configuration file.
//
// It is data only: it imports no AWS SDK and nothing else of esmd, so every
// other part can depend on it. Load reads a file and Parse decodes bytes; both
// run the same pipeline:
//
//  1. ${VAR} and ${VAR:-default} are expanded in every scalar value ($$ is a
//     literal dollar), and every variable that is not set is reported;
//  2. the document is decoded strictly: an unknown key is an error;
//  3. defaults are applied, per source type for mapping properties;
//  4. every setting is validated against AWS's ranges and applicability rules.
//
// All problems are reported at once, as Errors: a list of *ConfigError, each
// with the YAML path and line of the offending key. Every one wraps ErrInvalid.
//
// Mapping properties use the names of CloudFormation's
// AWS::Lambda::EventSourceMapping. Settings of esmd's own are lower camel case,
// in a nested esmd: block per mapping. REFERENCE.md lists every key with its
// default and range.
//
// Secrets (credentials, header values, tokens) are held as Secret, which never
// shows its value in String, YAML, JSON or slog output.
package config
