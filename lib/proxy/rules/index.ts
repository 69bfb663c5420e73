// The proxy's rules (--config): a checked config file, a compiled matcher,
// the set in force with reload, and --explain.
export { checkConfig, loadConfig, ConfigError, CONFIG_ERROR, type Rule, type RuleAction, type RulesConfig, type Protocol, type ParseOptions } from './config';
export { RuleMatcher, type MatchFacts, type Verdict } from './matcher';
export { RuleSet } from './rule-set';
export { parseExplainQuery, describeVerdict, ExplainQueryError } from './explain';
export { parseAddress, parseCidr, inCidr, type Cidr, type ParsedAddress } from './ip';
