# Stage change requests and reviews live here (SPEC 3.4).
