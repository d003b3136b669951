-- The login roles' settings, in one place for the embedded warehouse (hospital_ops.security.harden_roles,
-- which binds :'temp_file_limit' itself) and the compose stack's warehouse (docker/warehouse-init/, with
-- psql -v temp_file_limit=…). Run as a superuser: temp_file_limit and log_error_verbosity are
-- superuser-only settings. The roles must exist.

-- no login role is a superuser or may create roles, databases, replicate or bypass row security
alter role hospital_ops_writer nosuperuser nocreaterole nocreatedb noreplication nobypassrls;
alter role bi_reader nosuperuser nocreaterole nocreatedb noreplication nobypassrls;
alter role auditor nosuperuser nocreaterole nocreatedb noreplication nobypassrls;

-- a line COPY rejects is not echoed into the server log: the writer's server-side errors are terse
-- (the client still receives the whole error)
alter role hospital_ops_writer set log_error_verbosity = terse;

-- no bad row can fill the disk with temporary files (hospital_ops.limits, HOSPITAL_OPS_TEMP_FILE_LIMIT)
alter role hospital_ops_writer set temp_file_limit = :'temp_file_limit';
