/* A freeDiameter 1.2.1 extension answering Gy CCRs (RFC 4006), for benchmarks only: the
 * counterpart of freeDiameter's test_cc, which Debian does not ship. No accounts and no
 * store: every CCR gets 2001 with Auth-Application-Id 4, the request's CC-Request-Type
 * and CC-Request-Number, and per Multiple-Services-Credit-Control of the request one MSCC
 * with its Rating-Group, Result-Code 2001 and (except on TERMINATION_REQUEST) a
 * Granted-Service-Unit of 1,000,000 CC-Total-Octets.
 *
 *   gcc -O2 -shared -fPIC -o fd_gy_server.fdx scripts/fd_gy_server.c -lfdcore -lfdproto
 *
 * Load it after dict_nasreq.fdx, dict_dcca.fdx and dict_dcca_3gpp.fdx.
 */
#include <freeDiameter/extension.h>

static struct disp_hdl *hdl;
static struct dict_object *d_app, *d_ccr;
static struct dict_object *a_auth_app, *a_cc_type, *a_cc_num, *a_mscc, *a_rg, *a_gsu,
    *a_total, *a_rc;

static int add_value(msg_or_avp *parent, struct dict_object *model, union avp_value *v)
{
    struct avp *a;
    CHECK_FCT(fd_msg_avp_new(model, 0, &a));
    CHECK_FCT(fd_msg_avp_setvalue(a, v));
    CHECK_FCT(fd_msg_avp_add(parent, MSG_BRW_LAST_CHILD, a));
    return 0;
}

/* The value of the first child of `parent` with this code (vendor 0), or NULL. */
static union avp_value *child_value(msg_or_avp *parent, uint32_t code)
{
    struct avp *a = NULL;
    struct avp_hdr *h;
    if (fd_msg_browse(parent, MSG_BRW_FIRST_CHILD, &a, NULL))
        return NULL;
    while (a) {
        if (fd_msg_avp_hdr(a, &h) == 0 && h->avp_code == code && h->avp_vendor == 0)
            return h->avp_value;
        if (fd_msg_browse(a, MSG_BRW_NEXT, &a, NULL))
            return NULL;
    }
    return NULL;
}

static int ccr_cb(struct msg **msg, struct avp *avp, struct session *sess, void *opaque,
                  enum disp_action *act)
{
    struct msg *qry = *msg, *ans;
    union avp_value v, *t, *n;
    int32_t type = 0;
    struct avp *a = NULL;
    struct avp_hdr *h;
    (void)avp; (void)sess; (void)opaque; (void)act;

    CHECK_FCT(fd_msg_new_answer_from_req(fd_g_config->cnf_dict, msg, 0));
    ans = *msg;
    CHECK_FCT(fd_msg_rescode_set(ans, "DIAMETER_SUCCESS", NULL, NULL, 1));
    v.u32 = 4;
    CHECK_FCT(add_value(ans, a_auth_app, &v));
    t = child_value(qry, 416);   /* CC-Request-Type */
    n = child_value(qry, 415);   /* CC-Request-Number */
    if (t) {
        type = t->i32;
        v.i32 = t->i32;
        CHECK_FCT(add_value(ans, a_cc_type, &v));
    }
    if (n) {
        v.u32 = n->u32;
        CHECK_FCT(add_value(ans, a_cc_num, &v));
    }
    /* One MSCC per MSCC of the request (456). */
    CHECK_FCT(fd_msg_browse(qry, MSG_BRW_FIRST_CHILD, &a, NULL));
    while (a) {
        CHECK_FCT(fd_msg_avp_hdr(a, &h));
        if (h->avp_code == 456 && h->avp_vendor == 0) {
            struct avp *m;
            union avp_value *rg = child_value(a, 432);
            CHECK_FCT(fd_msg_avp_new(a_mscc, 0, &m));
            if (type != 3) {
                struct avp *g;
                CHECK_FCT(fd_msg_avp_new(a_gsu, 0, &g));
                v.u64 = 1000000;
                CHECK_FCT(add_value(g, a_total, &v));
                CHECK_FCT(fd_msg_avp_add(m, MSG_BRW_LAST_CHILD, g));
            }
            if (rg) {
                v.u32 = rg->u32;
                CHECK_FCT(add_value(m, a_rg, &v));
            }
            v.u32 = 2001;
            CHECK_FCT(add_value(m, a_rc, &v));
            CHECK_FCT(fd_msg_avp_add(ans, MSG_BRW_LAST_CHILD, m));
        }
        CHECK_FCT(fd_msg_browse(a, MSG_BRW_NEXT, &a, NULL));
    }
    CHECK_FCT(fd_msg_send(msg, NULL, NULL));
    return 0;
}

static int avp(const char *name, struct dict_object **o)
{
    return fd_dict_search(fd_g_config->cnf_dict, DICT_AVP, AVP_BY_NAME, name, o, ENOENT);
}

static int gy_entry(char *conffile)
{
    application_id_t id = 4;
    struct disp_when when;
    (void)conffile;
    CHECK_FCT(fd_dict_search(fd_g_config->cnf_dict, DICT_APPLICATION, APPLICATION_BY_ID, &id,
                             &d_app, ENOENT));
    CHECK_FCT(fd_dict_search(fd_g_config->cnf_dict, DICT_COMMAND, CMD_BY_NAME,
                             "Credit-Control-Request", &d_ccr, ENOENT));
    CHECK_FCT(avp("Auth-Application-Id", &a_auth_app));
    CHECK_FCT(avp("CC-Request-Type", &a_cc_type));
    CHECK_FCT(avp("CC-Request-Number", &a_cc_num));
    CHECK_FCT(avp("Multiple-Services-Credit-Control", &a_mscc));
    CHECK_FCT(avp("Rating-Group", &a_rg));
    CHECK_FCT(avp("Granted-Service-Unit", &a_gsu));
    CHECK_FCT(avp("CC-Total-Octets", &a_total));
    CHECK_FCT(avp("Result-Code", &a_rc));
    memset(&when, 0, sizeof(when));
    when.app = d_app;
    when.command = d_ccr;
    CHECK_FCT(fd_disp_register(ccr_cb, DISP_HOW_CC, &when, NULL, &hdl));
    CHECK_FCT(fd_disp_app_support(d_app, NULL, 1, 0));
    return 0;
}

EXTENSION_ENTRY("fd_gy_server", gy_entry, "dict_dcca");
