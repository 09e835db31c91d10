-- One database per service (run once by the PostgreSQL container on first start).
CREATE DATABASE parley_gateway;
CREATE DATABASE parley_agent;
