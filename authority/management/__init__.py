"""The management API's domain: owners, agents, tools, resource servers, credentials."""
